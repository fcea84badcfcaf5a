import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database } from '../database/database.js';
import { RollupReader } from '../storage/rollup-reader.js';
import { SELF_SERIES, SELF_SOURCE } from './figures.js';

export interface SelfSeries {
  id: number;
  metric: string;
  tags: Record<string, string>;
}

export interface SeriesBucket {
  id: number;
  /** Bucket start, epoch ms. */
  t: number;
  sum: number;
  min: number;
  max: number;
}

/**
 * Reads the stored self-metrics back: sum, min and max per series and bucket of time, planned over
 * raw points and rollups exactly as the query API plans them (so a 30-day period is read from the
 * 1 h and 1 d rollups, also after the raw points are gone).
 */
@Injectable()
export class SelfMetricsRepository {
  constructor(
    private readonly database: Database,
    private readonly rollups: RollupReader,
  ) {}

  /** Every stored self-metrics series (of every instance), or only those of the given metrics. */
  async series(metrics: readonly string[] = Object.values(SELF_SERIES)): Promise<SelfSeries[]> {
    const r = await this.database.readPool.query<SelfSeries>(
      `SELECT id, metric, tags FROM series WHERE source = $1 AND metric = ANY($2::text[]) ORDER BY id`,
      [SELF_SOURCE, metrics],
    );
    return r.rows;
  }

  /** Sum, min and max of each series per bucket of `stepMs` (aligned to the epoch) over [from, to). */
  async buckets(ids: number[], from: number, to: number, stepMs: number): Promise<SeriesBucket[]> {
    if (ids.length === 0 || from >= to) return [];
    const segments = await this.rollups.cover(ids, from, to, stepMs, 'sum'); // tiers and raw edges, as the query API reads them
    if (segments.length === 0) return [];
    const params: unknown[] = [`${stepMs / 1000} seconds`, ids];
    const within = (col: string, a: number, b: number) =>
      `${col} >= $${params.push(toIso(a))}::timestamptz AND ${col} < $${params.push(toIso(b))}::timestamptz`;
    const parts = segments.map((s) =>
      s.tier
        ? `SELECT series_id, date_bin($1::interval, bucket, timestamptz 'epoch') AS b, sum AS s, min AS mn, max AS mx FROM ${s.tier.table}
           WHERE series_id = ANY($2::int[]) AND ${within('bucket', s.from, s.to)}`
        : `SELECT series_id, date_bin($1::interval, time, timestamptz 'epoch') AS b, value AS s, value AS mn, value AS mx FROM points
           WHERE series_id = ANY($2::int[]) AND ${within('time', s.from, s.to)}`,
    );
    const r = await this.database.readPool.query<SeriesBucket>(
      `SELECT series_id AS id, (extract(epoch FROM b) * 1000)::float8 AS t, sum(s)::float8 AS sum, min(mn)::float8 AS min, max(mx)::float8 AS max
       FROM (${parts.join(' UNION ALL ')}) parts GROUP BY series_id, b ORDER BY b, series_id`,
      params,
    );
    return r.rows;
  }

  /** Statements running now on Timescope's connections (this one left out), and those running longer than `slowMs`. */
  async activeStatements(slowMs: number): Promise<{ active: number; slow: number } | null> {
    if (this.database.info.pglite) return null; // one in-process session: nothing to see in pg_stat_activity
    const r = await this.database.readPool.query<{ active: number; slow: number }>(
      `SELECT count(*) AS active, count(*) FILTER (WHERE now() - query_start > $1 * interval '1 millisecond') AS slow
       FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'timescope' AND state = 'active' AND pid <> pg_backend_pid()`,
      [slowMs],
    );
    return r.rows[0];
  }

  /** The server's data directory when this role may see it (superuser or pg_read_all_settings), else null. */
  async dataDirectory(): Promise<string | null> {
    if (this.database.info.pglite) return null;
    try {
      const r = await this.database.readPool.query<{ d: string }>(`SELECT current_setting('data_directory') AS d`);
      return r.rows[0]?.d ?? null;
    } catch {
      return null;
    }
  }

  /** The TimescaleDB extension's version, when installed. */
  async timescaleVersion(): Promise<string | null> {
    const r = await this.database.readPool.query<{ v: string }>(
      `SELECT extversion AS v FROM pg_extension WHERE extname = 'timescaledb'`,
    );
    return r.rows[0]?.v ?? null;
  }
}
