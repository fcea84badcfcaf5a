import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { MIGRATION_LOCK } from './advisory-locks.js';
import type { Flavour } from './database.js';

/**
 * Numbered SQL migrations under `db/migrations`, applied in order under an advisory lock, and the
 * idempotent SQL under `db/idempotent` (views, functions) re-applied whenever its text changes.
 *
 * File names: `0001_core.sql` runs on both flavours; `0002_points.postgresql.sql` and
 * `0002_points.timescaledb.sql` are the two variants of one migration. A file whose first line is
 * `-- timescope:no-transaction` runs outside a transaction (TimescaleDB DDL that refuses one).
 */
export const DB_DIR = fileURLToPath(new URL('../../../db/', import.meta.url));
const FILE = /^(\d{4}_[a-z0-9_]+?)(?:\.(postgresql|timescaledb))?\.sql$/;

export interface Migration {
  name: string;
  sql: string;
  transactional: boolean;
}

/** The migrations (or idempotent scripts) in `dir` for one flavour, in order. Pure apart from reading files. */
export function loadScripts(dir: string, flavour: Flavour): Migration[] {
  const byName = new Map<string, { common?: string; postgresql?: string; timescaledb?: string }>();
  for (const file of readdirSync(dir).sort()) {
    const m = FILE.exec(file);
    if (!m) continue;
    const entry = byName.get(m[1]) ?? {};
    entry[(m[2] as Flavour | undefined) ?? 'common'] = readFileSync(`${dir}/${file}`, 'utf8');
    byName.set(m[1], entry);
  }
  const out: Migration[] = [];
  for (const [name, v] of byName) {
    if (v.common !== undefined && (v.postgresql !== undefined || v.timescaledb !== undefined))
      throw new Error(`migration ${name}: either one common file or flavour variants, not both`);
    if (v.common === undefined && (v.postgresql === undefined) !== (v.timescaledb === undefined))
      throw new Error(`migration ${name}: a flavour variant is missing`);
    const sql = v.common ?? v[flavour]!;
    out.push({ name, sql, transactional: !sql.startsWith('-- timescope:no-transaction') });
  }
  return out;
}

export interface MigrationResult {
  flavour: Flavour;
  applied: string[];
}

/**
 * Decides the flavour (once, remembered in `timescope_meta`), then applies what is pending.
 * `want`: TIMESCALEDB=auto|on|off.
 */
export async function migrate(
  client: pg.ClientBase,
  want: 'auto' | 'on' | 'off',
  logger = new Logger('migrations'),
): Promise<MigrationResult> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS timescope_meta (key text PRIMARY KEY, value text NOT NULL)`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const flavour = await decideFlavour(client, want, logger);
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name),
    );
    const pending = loadScripts(`${DB_DIR}/migrations`, flavour).filter((m) => !done.has(m.name));
    const applied: string[] = [];
    for (const [i, m] of pending.entries()) {
      const t0 = Date.now();
      logger.log(`migration ${i + 1}/${pending.length}: ${m.name} (${flavour})`);
      if (m.transactional) await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [m.name]);
        if (m.transactional) await client.query('COMMIT');
      } catch (err) {
        if (m.transactional) await client.query('ROLLBACK').catch(() => undefined);
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      logger.log(`migration ${m.name} applied in ${Date.now() - t0} ms`);
      applied.push(m.name);
    }
    await applyIdempotent(client, loadScripts(`${DB_DIR}/idempotent`, flavour), applied.length > 0, logger);
    if (pending.length === 0) logger.log(`schema up to date (${flavour})`);
    return { flavour, applied };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}

/**
 * Re-applies the idempotent schema (views, functions) after any migration (one may have dropped a
 * view to change its table) and whenever its text differs from what this database last got (its
 * SHA-256 is kept in `timescope_meta`), as a repeatable migration: an
 * unchanged start replaces no view, so it takes none of their locks and no SQL client reading
 * through them waits on it. A view dropped by hand comes back with the next version whose
 * scripts differ, or at once by deleting the key `idempotent_sha256`.
 */
async function applyIdempotent(
  client: pg.ClientBase,
  scripts: Migration[],
  afterMigrations: boolean,
  logger: Logger,
): Promise<void> {
  const hash = createHash('sha256');
  for (const s of scripts) hash.update(`${s.name}\0${s.sql}\0`);
  const digest = hash.digest('hex');
  await client.query('BEGIN');
  try {
    const stored = (
      await client.query<{ value: string }>(`SELECT value FROM timescope_meta WHERE key = 'idempotent_sha256'`)
    ).rows[0]?.value;
    if (afterMigrations || stored !== digest) {
      for (const s of scripts) await client.query(s.sql);
      await client.query(
        `INSERT INTO timescope_meta (key, value) VALUES ('idempotent_sha256', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [digest],
      );
      logger.log(`idempotent schema applied (${scripts.map((s) => s.name).join(', ')})`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new Error(`idempotent schema failed: ${(err as Error).message}`, { cause: err });
  }
}

async function decideFlavour(client: pg.ClientBase, want: 'auto' | 'on' | 'off', logger: Logger): Promise<Flavour> {
  const stored = (await client.query<{ value: Flavour }>(`SELECT value FROM timescope_meta WHERE key = 'flavour'`))
    .rows[0]?.value;
  if (stored) {
    if (want === 'on' && stored !== 'timescaledb')
      throw new Error(
        'TIMESCALEDB=on, but this database was set up for plain PostgreSQL; use a new database to switch flavours',
      );
    if (want === 'off' && stored === 'timescaledb')
      throw new Error(
        'TIMESCALEDB=off, but this database was set up with TimescaleDB; use a new database to switch flavours',
      );
    return stored;
  }
  let flavour: Flavour = 'postgresql';
  if (want !== 'off') {
    const ext = (
      await client.query<{ installed: string | null }>(
        `SELECT installed_version AS installed FROM pg_available_extensions WHERE name = 'timescaledb'`,
      )
    ).rows[0];
    if (ext) {
      try {
        await client.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
        flavour = 'timescaledb';
      } catch (err) {
        if (want === 'on')
          throw new Error(`TIMESCALEDB=on, but the extension cannot be created: ${(err as Error).message}`, {
            cause: err,
          });
        logger.warn(
          `timescaledb is available but cannot be created (${(err as Error).message}); using plain PostgreSQL`,
        );
      }
    } else if (want === 'on') {
      throw new Error('TIMESCALEDB=on, but the timescaledb extension is not available on this server');
    }
  }
  await client.query(`INSERT INTO timescope_meta (key, value) VALUES ('flavour', $1)`, [flavour]);
  logger.log(
    `storage flavour: ${flavour === 'timescaledb' ? 'TimescaleDB (hypertables, continuous aggregates)' : 'PostgreSQL (native partitions, rollup tables)'}`,
  );
  return flavour;
}
