import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database } from '../database/database.js';
import type { Bucket } from './fill.js';
import type { QueryPlan } from './plan.js';
import type { Aggregation, SeriesSelector, TagFilter } from './query-spec.js';

/** Fixed SQL fragments per aggregation: inner (raw), inner (rollup), outer merge. Never user text. */
const FRAGMENTS: Record<Exclude<Aggregation, 'first' | 'last'>, { raw: string; rollup: string; outer: string; direct: string }> = {
  avg: { raw: 'count(*) AS c, sum(value) AS s', rollup: 'sum(count) AS c, sum(sum) AS s', outer: 'sum(s) / sum(c)', direct: 'avg(value)' },
  sum: { raw: 'sum(value) AS s', rollup: 'sum(sum) AS s', outer: 'sum(s)', direct: 'sum(value)' },
  count: { raw: 'count(*) AS c', rollup: 'sum(count) AS c', outer: 'sum(c)', direct: 'count(*)' },
  min: { raw: 'min(value) AS m', rollup: 'min(min) AS m', outer: 'min(m)', direct: 'min(value)' },
  max: { raw: 'max(value) AS m', rollup: 'max(max) AS m', outer: 'max(m)', direct: 'max(value)' },
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

/**
 * Where a rollup read stops and raw points take over (see plan.ts), as SQL over the parameters that
 * hold the series ids, rollupFrom and rollupTo. Shared with pipelines, which read rollups too.
 */
export function rollupSplitSql(plan: QueryPlan, ids: string, rollupFrom: string, rollupTo: string): string {
  if (!plan.watermarkSplit || !plan.tier) return `${rollupTo}::timestamptz`;
  return `(SELECT CASE WHEN EXISTS (SELECT 1 FROM rollup_invalidations i WHERE i.series_ids && ${ids}::int[] AND i.from_time < ${rollupTo}::timestamptz AND i.to_time >= ${rollupFrom}::timestamptz)
                   THEN ${rollupFrom}::timestamptz
                   ELSE GREATEST(${rollupFrom}::timestamptz, LEAST(${rollupTo}::timestamptz, COALESCE(date_bin('${plan.tier.interval}', watermark, timestamptz 'epoch'), ${rollupFrom}::timestamptz))) END
            FROM rollup_state WHERE id = 1)`;
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

  /** One value per bucket that has points, in time order. */
  async buckets(ids: number[], from: number, to: number, granularityMs: number, aggregation: Aggregation, plan: QueryPlan): Promise<Bucket[]> {
    const g = `${granularityMs / 1000} seconds`;
    let sql: string;
    let params: unknown[];
    if (aggregation === 'first' || aggregation === 'last') {
      params = [g, ids, toIso(from), toIso(to)];
      sql = `SELECT DISTINCT ON (b) (extract(epoch FROM b) * 1000)::float8 AS t, value AS v
             FROM (SELECT date_bin($1::interval, time, timestamptz 'epoch') AS b, time, value, series_id
                   FROM points WHERE series_id = ANY($2::int[]) AND time >= $3::timestamptz AND time < $4::timestamptz) x
             ORDER BY b, time ${aggregation === 'first' ? 'ASC' : 'DESC'}, series_id`;
    } else if (!plan.tier) {
      params = [g, ids, toIso(from), toIso(to)];
      sql = `SELECT (extract(epoch FROM date_bin($1::interval, time, timestamptz 'epoch')) * 1000)::float8 AS t, ${FRAGMENTS[aggregation].direct}::float8 AS v
             FROM points WHERE series_id = ANY($2::int[]) AND time >= $3::timestamptz AND time < $4::timestamptz
             GROUP BY 1 ORDER BY 1`;
    } else {
      const f = FRAGMENTS[aggregation];
      params = [g, ids, toIso(from), toIso(plan.rollupFrom), toIso(plan.rollupTo), toIso(to)];
      // $4 = rollupFrom, split = where the rollup stops and raw points take over again.
      const split = rollupSplitSql(plan, '$2', '$4', '$5');
      sql = `WITH w AS (SELECT ${split} AS split)
             SELECT (extract(epoch FROM b) * 1000)::float8 AS t, (${f.outer})::float8 AS v FROM (
               SELECT date_bin($1::interval, time, timestamptz 'epoch') AS b, ${f.raw}
               FROM points WHERE series_id = ANY($2::int[]) AND time >= $3::timestamptz AND time < $4::timestamptz GROUP BY 1
               UNION ALL
               SELECT date_bin($1::interval, bucket, timestamptz 'epoch') AS b, ${f.rollup}
               FROM ${plan.tier.table} WHERE series_id = ANY($2::int[]) AND bucket >= $4::timestamptz AND bucket < (SELECT split FROM w) GROUP BY 1
               UNION ALL
               SELECT date_bin($1::interval, time, timestamptz 'epoch') AS b, ${f.raw}
               FROM points WHERE series_id = ANY($2::int[]) AND time >= (SELECT split FROM w) AND time < $6::timestamptz GROUP BY 1
             ) parts GROUP BY b ORDER BY b`;
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
