import { Injectable } from '@nestjs/common';
import { floorTo, MINUTE, toIso } from '../common/time.js';
import { Database } from '../database/database.js';
import type { Bucket } from './fill.js';
import type { RollupState, Segment } from './plan.js';
import type { Aggregation, SeriesSelector, TagFilter } from './query-spec.js';

/**
 * Fixed SQL fragments per aggregation, never user text: what one raw point and one rollup row
 * contribute, how the contributions merge per bucket, and the aggregate over raw points alone.
 * Rows of all segments go into one aggregation (no per-segment grouping: segments other than a
 * single raw one are rollup rows or short raw edges).
 */
const FRAGMENTS: Record<Exclude<Aggregation, 'first' | 'last'>, { raw: string; rollup: string; outer: string; direct: string }> = {
  avg: { raw: '1::bigint AS c, value AS s', rollup: 'count AS c, sum AS s', outer: 'sum(s) / sum(c)', direct: 'avg(value)' },
  sum: { raw: 'value AS s', rollup: 'sum AS s', outer: 'sum(s)', direct: 'sum(value)' },
  count: { raw: '1::bigint AS c', rollup: 'count AS c', outer: 'sum(c)', direct: 'count(*)' },
  min: { raw: 'value AS m', rollup: 'min AS m', outer: 'min(m)', direct: 'min(value)' },
  max: { raw: 'value AS m', rollup: 'max AS m', outer: 'max(m)', direct: 'max(value)' },
};

/** `WHERE` conditions on the series table for a selector; appends to `params`. */
export function seriesConditions(sel: SeriesSelector, params: unknown[]): string {
  params.push(sel.metric);
  const conds = [`metric = $${params.length}`];
  if (sel.source !== undefined) {
    params.push(sel.source);
    conds.push(`source = $${params.length}`);
  }
  return [...conds, ...tagConditions(sel.tags, params)].join(' AND ');
}

/** Conditions on the series table's tags (keys AND, values of one key OR); appends to `params`. */
export function tagConditions(tags: TagFilter[], params: unknown[]): string[] {
  const conds: string[] = [];
  const single: Record<string, string> = {};
  for (const f of tags) {
    if (f.values.length === 1) single[f.key] = f.values[0];
    else {
      params.push(f.key, f.values);
      conds.push(`tags ->> $${params.length - 1} = ANY($${params.length}::text[])`);
    }
  }
  if (Object.keys(single).length > 0) {
    params.push(JSON.stringify(single));
    conds.push(`tags @> $${params.length}::jsonb`);
  }
  return conds;
}

/** Every read of series and points for the query API. */
@Injectable()
export class QueryRepository {
  constructor(private readonly database: Database) {}

  /** Ids of the series that match, at most `limit` + 1 (to tell the caller it was cut). */
  async seriesIds(sel: SeriesSelector, limit: number): Promise<number[]> {
    const params: unknown[] = [];
    const where = seriesConditions(sel, params);
    const r = await this.database.readPool.query<{ id: number }>(`SELECT id FROM series WHERE ${where} ORDER BY id LIMIT ${limit + 1}`, params);
    return r.rows.map((x) => x.id);
  }

  async metricExists(metric: string): Promise<boolean> {
    const r = await this.database.readPool.query('SELECT 1 FROM series WHERE metric = $1 LIMIT 1', [metric]);
    return (r.rowCount ?? 0) > 0;
  }

  /**
   * Plain PostgreSQL: how far the rollups of these series are complete for [from, to) — the
   * watermark, or earlier where late points wait for re-aggregation.
   */
  async rollupState(ids: number[], from: number, to: number): Promise<RollupState> {
    const r = await this.database.readPool.query<{ w: number | null; late: number | null }>(
      `SELECT (extract(epoch FROM watermark) * 1000)::float8 AS w,
              (SELECT (extract(epoch FROM min(i.from_time)) * 1000)::float8 FROM rollup_invalidations i
               WHERE i.series_ids && $1::int[] AND i.to_time >= $2::timestamptz AND i.from_time < $3::timestamptz) AS late
       FROM rollup_state WHERE id = 1`,
      [ids, toIso(from), toIso(to)],
    );
    const row = r.rows[0];
    let until = row?.w ?? -Infinity;
    if (row?.late !== null && row?.late !== undefined) until = Math.min(until, floorTo(row.late, MINUTE));
    return { materialisedUntil: until };
  }

  /** One value per bucket that has points, in time order, merged over the plan's segments. */
  async buckets(ids: number[], granularityMs: number, aggregation: Aggregation, segments: readonly Segment[]): Promise<Bucket[]> {
    if (segments.length === 0) return [];
    const params: unknown[] = [`${granularityMs / 1000} seconds`, ids];
    const within = (col: string, s: Segment) =>
      `${col} >= $${params.push(toIso(s.from))}::timestamptz AND ${col} < $${params.push(toIso(s.to))}::timestamptz`;
    let sql: string;
    if (aggregation === 'first' || aggregation === 'last') {
      // planSegments never uses a rollup for these: one raw segment.
      const [s] = segments;
      sql = `SELECT DISTINCT ON (b) (extract(epoch FROM b) * 1000)::float8 AS t, value AS v
             FROM (SELECT date_bin($1::interval, time, timestamptz 'epoch') AS b, time, value, series_id
                   FROM points WHERE series_id = ANY($2::int[]) AND ${within('time', s)}) x
             ORDER BY b, time ${aggregation === 'first' ? 'ASC' : 'DESC'}, series_id`;
    } else if (segments.length === 1 && !segments[0].tier) {
      const [s] = segments;
      sql = `SELECT (extract(epoch FROM date_bin($1::interval, time, timestamptz 'epoch')) * 1000)::float8 AS t, ${FRAGMENTS[aggregation].direct}::float8 AS v
             FROM points WHERE series_id = ANY($2::int[]) AND ${within('time', s)}
             GROUP BY 1 ORDER BY 1`;
    } else {
      const f = FRAGMENTS[aggregation];
      const parts = segments.map((s) => {
        const [col, cols, table] = s.tier ? ['bucket', f.rollup, s.tier.table] : ['time', f.raw, 'points'];
        return `SELECT date_bin($1::interval, ${col}, timestamptz 'epoch') AS b, ${cols} FROM ${table}
                WHERE series_id = ANY($2::int[]) AND ${within(col, s)}`;
      });
      sql = `SELECT (extract(epoch FROM b) * 1000)::float8 AS t, (${f.outer})::float8 AS v
             FROM (${parts.join(' UNION ALL ')}) parts GROUP BY b ORDER BY b`;
    }
    const r = await this.database.readPool.query<Bucket>(sql, params);
    return r.rows;
  }

  async metricNames(search: string | undefined, limit: number) {
    const r = await this.database.readPool.query<{ name: string; units: string[]; series_count: number; sources_count: number; last_seen: Date | null }>(
      `SELECT metric AS name, array_remove(array_agg(DISTINCT unit), NULL) AS units, count(*) AS series_count,
              count(DISTINCT source) AS sources_count, max(last_seen) AS last_seen
       FROM series ${search ? `WHERE metric ILIKE $2 ESCAPE '\\'` : ''}
       GROUP BY metric ORDER BY metric LIMIT $1`,
      search ? [limit, `%${escapeLike(search)}%`] : [limit],
    );
    return r.rows;
  }

  async sources(metric: string | undefined, limit: number) {
    const r = await this.database.readPool.query<{ name: string; series_count: number; metrics_count: number; last_seen: Date | null }>(
      `SELECT source AS name, count(*) AS series_count, count(DISTINCT metric) AS metrics_count, max(last_seen) AS last_seen
       FROM series ${metric ? 'WHERE metric = $2' : ''} GROUP BY source ORDER BY source LIMIT $1`,
      metric ? [limit, metric] : [limit],
    );
    return r.rows;
  }

  /** Tag keys and their values for a metric (optionally one source), at most `perKey` values each. */
  async tags(metric: string, source: string | undefined, perKey: number) {
    const r = await this.database.readPool.query<{ key: string; values: string[]; value_count: number }>(
      `SELECT t.key, (array_agg(DISTINCT t.value ORDER BY t.value))[1:$3] AS values, count(DISTINCT t.value) AS value_count
       FROM series s, jsonb_each_text(s.tags) AS t(key, value)
       WHERE s.metric = $1 ${source !== undefined ? 'AND s.source = $2' : 'AND $2::text IS NULL'}
       GROUP BY t.key ORDER BY t.key`,
      [metric, source ?? null, perKey],
    );
    return r.rows;
  }
}

export const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
