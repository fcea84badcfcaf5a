import { Injectable } from '@nestjs/common';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { toIsoMicros } from '../common/time.js';
import { Database } from '../database/database.js';
import { CopyBinaryDecoder, PointColumns } from './copy-decoder.js';

export interface SeriesInfo {
  id: number;
  metric: string;
  source: string;
  tags: Record<string, string>;
  unit: string | null;
}

export interface StreamOptions {
  /** `time`: by time, then series (what a CSV reader expects); `series`: each series in time order. */
  order: 'time' | 'series';
  /** Read at most this many rows (the caller asks for one more than it accepts, to tell it was cut). */
  limit?: number;
  /** Statement timeout for this read (ms, 0 = none); exports outlive the API's timeout. */
  timeoutMs?: number;
  /** Aborted when the reader of the stream is gone: the COPY stops at once and its connection is dropped. */
  signal?: AbortSignal;
  /**
   * Read on a connection of its own rather than one of the general pool (exports: a download may
   * last as long as its client takes, and two of them held the whole general pool, so the catalogue,
   * the control plane and the jobs waited). Not on PGlite, which serves one session.
   */
  dedicated?: boolean;
}

/**
 * Bulk reads of raw points for analysis and export: one binary `COPY (SELECT ...) TO STDOUT` on a
 * connection of the read pool, decoded into typed arrays as it streams, so a million points reach
 * Node without a row object each and an export of any size holds only a chunk in memory. Works on
 * PostgreSQL and on PGlite (which takes COPY TO STDOUT, though not COPY FROM STDIN).
 */
@Injectable()
export class PointReader {
  constructor(private readonly database: Database) {}

  async seriesInfo(ids: readonly number[]): Promise<Map<number, SeriesInfo>> {
    const r = await this.database.readPool.query<SeriesInfo>(
      'SELECT id, metric, source, tags, unit FROM series WHERE id = ANY($1::int[]) ORDER BY id',
      [ids],
    );
    return new Map(r.rows.map((s) => [s.id, s]));
  }

  async *stream(ids: readonly number[], from: number, to: number, opts: StreamOptions): AsyncGenerator<PointColumns> {
    if (ids.length === 0 || !(from < to)) return;
    // COPY takes no bind parameters. Only integers (series ids from our own table) and timestamps
    // formatted here from numbers reach this text: nothing a user typed.
    for (const id of ids) if (!Number.isSafeInteger(id)) throw new Error(`bad series id ${id}`);
    const order = opts.order === 'time' ? 'time, series_id' : 'series_id, time';
    const limit = opts.limit !== undefined ? ` LIMIT ${Math.floor(opts.limit)}` : '';
    const sql =
      `COPY (SELECT series_id, time, value FROM points WHERE series_id = ANY('{${ids.join(',')}}'::int[])` +
      ` AND time >= '${toIsoMicros(from)}'::timestamptz AND time < '${toIsoMicros(to)}'::timestamptz ORDER BY ${order}${limit}) TO STDOUT (FORMAT binary)`;
    const { signal } = opts;
    signal?.throwIfAborted();
    const dedicated = opts.dedicated === true && !this.database.info.pglite;
    const client: pg.ClientBase = dedicated
      ? await this.database.dedicatedClient()
      : await this.database.readPool.connect();
    if (dedicated) client.on('error', () => undefined); // a connection lost mid-COPY fails the COPY itself
    let clean = false;
    let stop: (() => void) | undefined;
    try {
      signal?.throwIfAborted();
      await client.query('BEGIN READ ONLY');
      if (opts.timeoutMs !== undefined && !this.database.info.pglite)
        await client.query(`SET LOCAL statement_timeout = ${Math.floor(opts.timeoutMs)}`);
      signal?.throwIfAborted();
      const decoder = new CopyBinaryDecoder();
      const copy = client.query(copyTo(sql));
      stop = () => copy.destroy(new Error('export abandoned by its reader'));
      signal?.addEventListener('abort', stop, { once: true });
      for await (const chunk of copy as AsyncIterable<Buffer>) {
        const cols = decoder.push(chunk);
        if (cols.length) yield cols;
      }
      if (!decoder.complete) throw new Error('binary COPY ended early');
      await client.query('COMMIT');
      clean = true;
    } finally {
      if (stop) signal?.removeEventListener('abort', stop);
      // A consumer that stopped early (client gone, limit reached) leaves the COPY mid-stream: drop the connection.
      if (dedicated) void (client as pg.Client).end().catch(() => undefined);
      else (client as pg.PoolClient).release(clean ? undefined : new Error('stream abandoned'));
    }
  }
}
