import { Injectable } from '@nestjs/common';
import type pg from 'pg';

import { Database, Queryable } from '../database/database.js';
import type { Change, StoredSettings } from './settings-schema.js';

export interface StoredRow {
  document: StoredSettings;
  version: number;
  updated_at: Date | null;
  updated_by: string | null;
}

export interface HistoryRow {
  version: number;
  changed_at: Date;
  changed_by: string;
  client: Record<string, unknown>;
  changes: Change[];
  before: Record<string, unknown>;
  after: Record<string, unknown>;
}

const SELECT_ROW = `SELECT document, version, updated_at, updated_by FROM settings WHERE id = 1`;

/** All SQL of the runtime configuration: the one `settings` row and its history. */
@Injectable()
export class SettingsRepository {
  constructor(private readonly database: Database) {}

  async load(client: Queryable = this.database.readPool): Promise<StoredRow> {
    const r = await client.query<StoredRow>(SELECT_ROW);
    return r.rows[0] ?? { document: {}, version: 0, updated_at: null, updated_by: null };
  }

  async version(client: Queryable = this.database.readPool): Promise<number> {
    const r = await client.query<{ version: number }>(`SELECT version FROM settings WHERE id = 1`);
    return r.rows[0]?.version ?? 0;
  }

  /**
   * Read-modify-write under a row lock, so concurrent PUTs (on any instance) apply one after the
   * other. `decide` returns the new document and history entry, or null to leave things alone
   * (it may also throw to refuse, which rolls back).
   */
  async update(
    decide: (
      current: StoredRow,
    ) => { document: StoredSettings; by: string; client: Record<string, unknown>; changes: Change[] } | null,
  ): Promise<StoredRow> {
    return this.database.writeTransaction(async (tx: pg.PoolClient) => {
      const current = (await tx.query<StoredRow>(`${SELECT_ROW} FOR UPDATE`)).rows[0];
      const next = decide(current);
      if (!next) return current;
      const before = Object.fromEntries(next.changes.map((c) => [c.field, c.before]));
      const after = Object.fromEntries(next.changes.map((c) => [c.field, c.after]));
      const r = await tx.query<StoredRow>(
        `UPDATE settings SET document = $1, version = version + 1, updated_at = now(), updated_by = $2 WHERE id = 1
         RETURNING document, version, updated_at, updated_by`,
        [JSON.stringify(next.document), next.by],
      );
      await tx.query(
        `INSERT INTO settings_history (version, changed_by, client, changes, before, after) VALUES ($1, $2, $3, $4, $5, $6)`,
        [
          r.rows[0].version,
          next.by,
          JSON.stringify(next.client),
          JSON.stringify(next.changes),
          JSON.stringify(before),
          JSON.stringify(after),
        ],
      );
      return r.rows[0];
    });
  }

  async history(limit: number, beforeVersion?: number): Promise<HistoryRow[]> {
    const params: unknown[] = [limit];
    if (beforeVersion !== undefined) params.push(beforeVersion);
    const r = await this.database.readPool.query<HistoryRow>(
      `SELECT version, changed_at, changed_by, client, changes, before, after FROM settings_history
       ${beforeVersion !== undefined ? 'WHERE version < $2' : ''} ORDER BY version DESC, id DESC LIMIT $1`,
      params,
    );
    return r.rows;
  }
}

/** Before the app is built: the stored overrides, or none when the schema is not there yet. */
export async function readStoredSettings(client: pg.ClientBase): Promise<StoredSettings> {
  try {
    const r = await client.query<{ document: StoredSettings }>(`SELECT document FROM settings WHERE id = 1`);
    return r.rows[0]?.document ?? {};
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return {}; // undefined_table: a new database, migrated later
    throw err;
  }
}
