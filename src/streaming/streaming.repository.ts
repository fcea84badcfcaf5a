import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database } from '../database/database.js';
import { seriesKey } from '../storage/point-batch.js';
import type { StreamSeries } from './encode.js';
import type { StreamFilter } from './stream-filter.js';

interface SeriesRow {
  id: number;
  metric: string;
  source: string;
  tags: Record<string, string>;
  tags_key: string;
  unit: string | null;
}

export interface LatestRow {
  series: StreamSeries;
  seriesId: number;
  time: number;
  value: number;
}

export interface BucketRow {
  series: StreamSeries;
  seriesId: number;
  /** Bucket start, epoch ms. */
  time: number;
  count: number;
  sum: number;
  min: number;
  max: number;
}

const toSeries = (r: SeriesRow): StreamSeries => ({
  key: seriesKey(r.metric, r.source, r.tags_key),
  metric: r.metric,
  source: r.source,
  tags: r.tags,
  unit: r.unit,
});

/** `WHERE` conditions on the series table for a stream filter; appends to `params`. */
export function filterConditions(f: StreamFilter, params: unknown[]): string {
  const conds: string[] = [];
  if (f.metrics) conds.push(`metric = ANY($${params.push(f.metrics)}::text[])`);
  if (f.sources) conds.push(`source = ANY($${params.push(f.sources)}::text[])`);
  for (const t of f.tags) conds.push(`tags ->> $${params.push(t.key)} = ANY($${params.push(t.values)}::text[])`);
  return conds.length ? conds.join(' AND ') : 'true';
}

/** Stored data for streams that start from (or resume to) what is already there. */
@Injectable()
export class StreamingRepository {
  constructor(private readonly database: Database) {}

  /** Number of series matching a filter, counting at most `limit` + 1. */
  async countSeries(f: StreamFilter, limit: number): Promise<number> {
    const params: unknown[] = [];
    const where = filterConditions(f, params);
    const r = await this.database.readPool.query<{ n: number }>(
      `SELECT count(*) AS n FROM (SELECT 1 FROM series WHERE ${where} LIMIT ${limit + 1}) s`,
      params,
    );
    return r.rows[0].n;
  }

  /** The latest point of each matching series (a LATERAL per series, never DISTINCT ON over points). */
  async latest(f: StreamFilter, maxSeries: number): Promise<LatestRow[]> {
    const params: unknown[] = [];
    const where = filterConditions(f, params);
    const r = await this.database.readPool.query<SeriesRow & { t: number; value: number }>(
      `SELECT s.id, s.metric, s.source, s.tags, s.tags_key, s.unit, (extract(epoch FROM l.time) * 1000)::float8 AS t, l.value
       FROM (SELECT id, metric, source, tags, tags_key, unit FROM series WHERE ${where} ORDER BY id LIMIT ${maxSeries}) s
       CROSS JOIN LATERAL (SELECT time, value FROM points WHERE series_id = s.id ORDER BY time DESC LIMIT 1) l`,
      params,
    );
    return r.rows.map((x) => ({ series: toSeries(x), seriesId: x.id, time: x.t, value: x.value }));
  }

  /** Per matching series, count/sum/min/max of the points in each `intervalMs` bucket of [from, to), oldest first. */
  async buckets(
    f: StreamFilter,
    from: number,
    to: number,
    intervalMs: number,
    maxSeries: number,
    maxRows: number,
  ): Promise<BucketRow[]> {
    const params: unknown[] = [`${intervalMs / 1000} seconds`, toIso(from), toIso(to)];
    const where = filterConditions(f, params);
    const r = await this.database.readPool.query<
      SeriesRow & { t: number; count: number; sum: number; min: number; max: number }
    >(
      `SELECT s.id, s.metric, s.source, s.tags, s.tags_key, s.unit, (extract(epoch FROM b.bucket) * 1000)::float8 AS t, b.count, b.sum, b.min, b.max
       FROM (SELECT id, metric, source, tags, tags_key, unit FROM series WHERE ${where} ORDER BY id LIMIT ${maxSeries}) s
       CROSS JOIN LATERAL (
         SELECT date_bin($1::interval, time, timestamptz 'epoch') AS bucket, count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
         FROM points WHERE series_id = s.id AND time >= $2::timestamptz AND time < $3::timestamptz GROUP BY 1) b
       ORDER BY t, s.id LIMIT ${maxRows}`,
      params,
    );
    return r.rows.map((x) => ({
      series: toSeries(x),
      seriesId: x.id,
      time: x.t,
      count: x.count,
      sum: x.sum,
      min: x.min,
      max: x.max,
    }));
  }
}
