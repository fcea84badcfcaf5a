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

  /**
   * The series of every metric that pass the export's source and tag filters (a tag filter: the
   * series has the key with one of the values), at most `limit` + 1: the filters apply before the
   * cap, so that narrowing an export of all metrics brings it under the cap.
   */
  async allSeriesIds(
    limit: number,
    source: string | undefined,
    tags: ReadonlyArray<{ key: string; values: string[] }>,
  ): Promise<number[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (source !== undefined) where.push(`source = $${params.push(source)}`);
    for (const t of tags) where.push(`tags ->> $${params.push(t.key)} = ANY($${params.push(t.values)}::text[])`);
    const r = await this.database.readPool.query<{ id: number }>(
      `SELECT id FROM series${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT $${params.push(limit + 1)}`,
      params,
    );
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
      `UPDATE exports SET status = 'completed', error = NULL, records_count = $2, file_size_bytes = $3, progress = 1, finished_at = now(),
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
  /** Exports still pending or running, with the instance (`host:pid`) that runs each and when they were asked for. */
  async unfinished(): Promise<Array<{ id: string; instance: string; created_at: Date }>> {
    const r = await this.database.readPool.query<{ id: string; instance: string; created_at: Date }>(
      `SELECT id, instance, created_at FROM exports WHERE status IN ('pending', 'running')`,
    );
    return r.rows;
  }

  /** Marks these exports failed: the process that ran them is gone. */
  async failInterrupted(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const r = await this.database.readPool.query(
      `UPDATE exports SET status = 'failed', error = 'interrupted: the service restarted', finished_at = now(), expires_at = now() + interval '1 day'
       WHERE status IN ('pending', 'running') AND id = ANY($1::text[])`,
      [ids],
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
