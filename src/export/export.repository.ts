import { Injectable } from '@nestjs/common';
import { Database, Queryable } from '../database/database.js';

export interface ExportRow {
  id: string;
  status: 'pending' | 'running' | 'completed' | 'failed';
  format: string;
  request: Record<string, unknown>;
  instance: string;
  file_name: string | null;
  records_count: number;
  file_size_bytes: number | null;
  progress: number;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  expires_at: Date | null;
}

const COLUMNS =
  'id, status, format, request, instance, file_name, records_count, file_size_bytes, progress, error, created_at, started_at, finished_at, expires_at';

/** The `exports` table (asynchronous exports) and the series lookups exports need. */
@Injectable()
export class ExportRepository {
  constructor(private readonly database: Database) {}

  /** Every series id, for an export of all metrics (at most `limit` + 1). */
  async allSeriesIds(limit: number): Promise<number[]> {
    const r = await this.database.readPool.query<{ id: number }>('SELECT id FROM series ORDER BY id LIMIT $1', [
      limit + 1,
    ]);
    return r.rows.map((x) => x.id);
  }

  async create(
    id: string,
    format: string,
    request: Record<string, unknown>,
    instance: string,
    fileName: string,
  ): Promise<ExportRow> {
    const r = await this.database.readPool.query<ExportRow>(
      `INSERT INTO exports (id, status, format, request, instance, file_name) VALUES ($1, 'pending', $2, $3, $4, $5) RETURNING ${COLUMNS}`,
      [id, format, JSON.stringify(request), instance, fileName],
    );
    return r.rows[0];
  }

  async get(id: string): Promise<ExportRow | undefined> {
    const r = await this.database.readPool.query<ExportRow>(`SELECT ${COLUMNS} FROM exports WHERE id = $1`, [id]);
    return r.rows[0];
  }

  async list(limit: number): Promise<ExportRow[]> {
    const r = await this.database.readPool.query<ExportRow>(
      `SELECT ${COLUMNS} FROM exports ORDER BY created_at DESC LIMIT $1`,
      [limit],
    );
    return r.rows;
  }

  async started(id: string): Promise<void> {
    await this.database.readPool.query(`UPDATE exports SET status = 'running', started_at = now() WHERE id = $1`, [id]);
  }

  async progress(id: string, records: number, progress: number): Promise<void> {
    await this.database.readPool.query('UPDATE exports SET records_count = $2, progress = $3 WHERE id = $1', [
      id,
      records,
      progress,
    ]);
  }

  async completed(id: string, records: number, bytes: number, ttlMs: number): Promise<void> {
    await this.database.readPool.query(
      `UPDATE exports SET status = 'completed', records_count = $2, file_size_bytes = $3, progress = 1, finished_at = now(),
              expires_at = now() + $4 * interval '1 millisecond' WHERE id = $1`,
      [id, records, bytes, ttlMs],
    );
  }

  async failed(id: string, error: string, ttlMs: number): Promise<void> {
    await this.database.readPool.query(
      `UPDATE exports SET status = 'failed', error = $2, finished_at = now(), expires_at = now() + $3 * interval '1 millisecond' WHERE id = $1`,
      [id, error.slice(0, 2000), ttlMs],
    );
  }

  /** Exports this host left unfinished (a restart): they will never finish. */
  async failInterrupted(hostPrefix: string): Promise<number> {
    const r = await this.database.readPool.query(
      `UPDATE exports SET status = 'failed', error = 'interrupted: the service restarted', finished_at = now(), expires_at = now() + interval '1 day'
       WHERE status IN ('pending', 'running') AND instance LIKE $1 || ':%'`,
      [hostPrefix],
    );
    return r.rowCount ?? 0;
  }

  /** Removes expired exports; returns their file names (for the caller to delete). */
  async deleteExpired(client: Queryable): Promise<Array<{ id: string; file_name: string | null; instance: string }>> {
    const r = await client.query<{ id: string; file_name: string | null; instance: string }>(
      'DELETE FROM exports WHERE expires_at < now() RETURNING id, file_name, instance',
    );
    return r.rows;
  }
}
