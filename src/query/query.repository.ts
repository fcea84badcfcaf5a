import { Injectable } from '@nestjs/common';
import { Database } from '../database/database.js';
import type { GroupKey, SeriesSelection } from '../storage/rollup-reader.js';
import type { SeriesSelector, TagFilter } from './query-spec.js';

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

/** The query API's reads of the series catalogue; buckets of points come from storage's RollupReader. */
@Injectable()
export class QueryRepository {
  constructor(private readonly database: Database) {}

  /** A selector as a condition on the series table, for storage's RollupReader.selectedBuckets. */
  selection(sel: SeriesSelector, limit: number): SeriesSelection {
    const params: unknown[] = [];
    return { where: seriesConditions(sel, params), params, limit };
  }

  /** Ids of the series that match, at most `limit` + 1 (to tell the caller it was cut). */
  async seriesIds(sel: SeriesSelector, limit: number): Promise<number[]> {
    const params: unknown[] = [];
    const where = seriesConditions(sel, params);
    const r = await this.database.readPool.query<{ id: number }>(
      `SELECT id FROM series WHERE ${where} ORDER BY id LIMIT ${limit + 1}`,
      params,
    );
    return r.rows.map((x) => x.id);
  }

  /**
   * The distinct groups these series fall into for `groupBy` (source or a tag's value, null where a
   * series lacks the tag) and how many series each holds; at most `limit` + 1, in no order.
   */
  async seriesGroups(
    ids: number[],
    groupBy: readonly GroupKey[],
    limit: number,
  ): Promise<Array<{ values: Array<string | null>; series_count: number }>> {
    const params: unknown[] = [ids];
    const cols = groupBy.map((g, i) =>
      g.by === 'source' ? `source AS g${i}` : `tags ->> $${params.push(g.key)} AS g${i}`,
    );
    const r = await this.database.readPool.query<Record<string, string | number | null>>(
      `SELECT ${cols.join(', ')}, count(*)::int AS n FROM series WHERE id = ANY($1::int[])
       GROUP BY ${groupBy.map((_, i) => i + 1).join(', ')} LIMIT ${limit + 1}`,
      params,
    );
    return r.rows.map((row) => ({
      values: groupBy.map((_, i) => (row[`g${i}`] as string | null) ?? null),
      series_count: row.n as number,
    }));
  }

  async metricExists(metric: string): Promise<boolean> {
    const r = await this.database.readPool.query('SELECT 1 FROM series WHERE metric = $1 LIMIT 1', [metric]);
    return (r.rowCount ?? 0) > 0;
  }

  async metricNames(search: string | undefined, limit: number) {
    const r = await this.database.readPool.query<{
      name: string;
      units: string[];
      series_count: number;
      sources_count: number;
      last_seen: Date | null;
    }>(
      `SELECT metric AS name, array_remove(array_agg(DISTINCT unit), NULL) AS units, count(*) AS series_count,
              count(DISTINCT source) AS sources_count, max(last_seen) AS last_seen
       FROM series ${search ? `WHERE metric ILIKE $2 ESCAPE '\\'` : ''}
       GROUP BY metric ORDER BY metric LIMIT $1`,
      search ? [limit, `%${escapeLike(search)}%`] : [limit],
    );
    return r.rows;
  }

  async sources(metric: string | undefined, limit: number) {
    const r = await this.database.readPool.query<{
      name: string;
      series_count: number;
      metrics_count: number;
      last_seen: Date | null;
    }>(
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
