import { Injectable } from '@nestjs/common';
import { floorTo, MINUTE, toIso } from '../common/time.js';
import { Database } from '../database/database.js';
import { coarsestTier, planSegments, RollupState, Segment } from './rollup-plan.js';
import { ROLLUP_AGGREGATIONS, RollupTier } from './tiers.js';

/** Aggregations of points per bucket; avg, sum, min, max and count can come from rollups. */
export type BucketAggregation = 'avg' | 'sum' | 'min' | 'max' | 'count' | 'first' | 'last';
export type RollupAggregation = Exclude<BucketAggregation, 'first' | 'last'>;

/** One bucket of the series merged: its start (epoch ms) and value. */
export interface BucketValue {
  t: number;
  v: number | null;
}

/** How a grouped read splits the series: by their source, or by the value of one tag (null where a series lacks it). */
export type GroupKey = { by: 'source' } | { by: 'tag'; key: string };

export interface GroupedBucketQuery {
  seriesIds: number[];
  widthMs: number;
  functions: readonly RollupAggregation[];
  groupBy: readonly GroupKey[];
  /** At most this many rows + 1 come back (so that the caller can tell it was cut). */
  limit: number;
  /** Also read a cover that uses no rollup tier (raw points only); `tier` is then undefined. */
  rawCovers?: boolean;
}

/** Grouped first or last value per bucket, from raw points (no rollup holds them). */
export interface GroupedEdgeQuery {
  seriesIds: number[];
  from: number;
  to: number;
  widthMs: number;
  which: 'first' | 'last';
  groupBy: readonly GroupKey[];
  /** At most this many rows + 1 come back. */
  limit: number;
}

/** One bucket of one metric in one group. */
export interface GroupedBucket {
  /** Bucket start, epoch ms. */
  t: number;
  metric: string;
  group: Array<string | null>;
  /** One value per requested function, in the order asked. */
  values: Array<number | null>;
}

/**
 * Fixed SQL fragments per aggregation, never user text: what one raw point and one rollup row
 * contribute, how the contributions merge per bucket, and the aggregate over raw points alone.
 * Rows of all segments go into one aggregation (no per-segment grouping: segments other than a
 * single raw one are rollup rows or short raw edges).
 */
const FRAGMENTS: Record<RollupAggregation, { raw: string; rollup: string; outer: string; direct: string }> = {
  avg: {
    raw: '1::bigint AS c, value AS s',
    rollup: 'count AS c, sum AS s',
    outer: 'sum(s) / sum(c)',
    direct: 'avg(value)',
  },
  sum: { raw: 'value AS s', rollup: 'sum AS s', outer: 'sum(s)', direct: 'sum(value)' },
  count: { raw: '1::bigint AS c', rollup: 'count AS c', outer: 'sum(c)', direct: 'count(*)' },
  min: { raw: 'value AS m', rollup: 'min AS m', outer: 'min(m)', direct: 'min(value)' },
  max: { raw: 'value AS m', rollup: 'max AS m', outer: 'max(m)', direct: 'max(value)' },
};

/** How per-series partials (c, sm, mn, mx) merge into each function of a grouped read. */
const MERGE: Record<RollupAggregation, string> = {
  avg: 'sum(q.sm) / sum(q.c)',
  sum: 'sum(q.sm)',
  min: 'min(q.mn)',
  max: 'max(q.mx)',
  count: 'sum(q.c)::float8',
};

/**
 * The one read path for bucketed aggregates over raw points and rollups, used by the query API
 * (and through it exports and anomalies) and by pipelines. Only here (and in the writer and the
 * refresh that keep rollups) does the flavour matter: TimescaleDB's continuous aggregates are
 * complete on read (real-time aggregation), plain PostgreSQL's rollup tables only below their
 * watermark, and earlier where late points wait for re-aggregation. Above that, callers get the
 * same buckets from either flavour, equal to aggregating the raw points.
 */
@Injectable()
export class RollupReader {
  constructor(private readonly database: Database) {}

  /**
   * How [from, to) is read in buckets of `widthMs` for these series: the coarsest tier that tiles
   * the buckets in the middle, finer tiers and raw points at the edges, raw points past what is
   * materialised (see rollup-plan.ts).
   */
  async cover(
    seriesIds: number[],
    from: number,
    to: number,
    widthMs: number,
    aggregation: BucketAggregation,
  ): Promise<Segment[]> {
    const state =
      this.database.info.flavour === 'postgresql' && ROLLUP_AGGREGATIONS.has(aggregation)
        ? await this.rollupState(seriesIds, from, to)
        : { materialisedUntil: Infinity };
    return planSegments(from, to, widthMs, aggregation, state);
  }

  /** One value per bucket that has points, over all the series together, in time order; and the cover it was read from. */
  async buckets(
    seriesIds: number[],
    from: number,
    to: number,
    widthMs: number,
    aggregation: BucketAggregation,
  ): Promise<{ rows: BucketValue[]; segments: Segment[] }> {
    const segments = await this.cover(seriesIds, from, to, widthMs, aggregation);
    return { rows: await this.readBuckets(seriesIds, widthMs, aggregation, segments), segments };
  }

  /**
   * Buckets per metric and group from a cover that uses a rollup tier: partial aggregates (count,
   * sum, min, max per bucket and series) read from each segment, a tier or raw points at the
   * edges, then merged per bucket, metric and group. Undefined when the cover uses no tier: the
   * caller aggregates raw points its own way (percentiles, overlapping windows).
   */
  async groupedBuckets(
    q: GroupedBucketQuery,
    segments: readonly Segment[],
  ): Promise<{ rows: GroupedBucket[]; tier: RollupTier | undefined } | undefined> {
    const tier = coarsestTier(segments);
    if (!tier && !q.rawCovers) return undefined;
    if (q.seriesIds.length === 0 || segments.length === 0) return { rows: [], tier };
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    const ids = p(q.seriesIds);
    // Group values are read once per series (not once per point), and buckets become epoch ms after grouping.
    const groupCols = q.groupBy
      .map((g, i) => `, ${g.by === 'source' ? 'source' : `tags ->> ${p(g.key)}`} AS g${i}`)
      .join('');
    const groupRefs = q.groupBy.map((_, i) => `, s.g${i}`).join('');
    const interval = p(`${q.widthMs / 1000} seconds`);
    const parts = segments.map((seg) => {
      const within = (col: string) =>
        `${col} >= ${p(toIso(seg.from))}::timestamptz AND ${col} < ${p(toIso(seg.to))}::timestamptz`;
      return seg.tier
        ? `SELECT date_bin(${interval}::interval, r.bucket, timestamptz 'epoch') AS b, r.series_id, sum(r.count) AS c, sum(r.sum) AS sm, min(r.min) AS mn, max(r.max) AS mx
           FROM ${seg.tier.table} r WHERE r.series_id = ANY(${ids}::int[]) AND ${within('r.bucket')} GROUP BY 1, 2`
        : `SELECT date_bin(${interval}::interval, p.time, timestamptz 'epoch') AS b, p.series_id, count(*) AS c, sum(p.value) AS sm, min(p.value) AS mn, max(p.value) AS mx
           FROM points p WHERE p.series_id = ANY(${ids}::int[]) AND ${within('p.time')} GROUP BY 1, 2`;
    });
    const sql = `WITH s AS MATERIALIZED (SELECT id, metric${groupCols} FROM series WHERE id = ANY(${ids}::int[])),
      q AS (${parts.join(' UNION ALL ')})
      SELECT (extract(epoch FROM x.b) * 1000)::float8 AS t, x.* FROM (
        SELECT q.b, s.metric AS m${groupRefs}, ${q.functions.map((f) => `(${MERGE[f]})::float8 AS "${f}"`).join(', ')}
        FROM q JOIN s ON s.id = q.series_id
        GROUP BY ${['1', '2', ...q.groupBy.map((_, i) => String(i + 3))].join(', ')}
      ) x ORDER BY 1 LIMIT ${p(q.limit + 1)}`;
    const r = await this.database.readPool.query<Record<string, unknown>>(sql, params);
    const rows = r.rows.map((row) => ({
      t: row.t as number,
      metric: row.m as string,
      group: q.groupBy.map((_, i) => (row[`g${i}`] as string | null) ?? null),
      values: q.functions.map((f) => {
        const v = row[f] as number | null;
        return v === null || v === undefined || !Number.isFinite(v) ? null : Number(v);
      }),
    }));
    return { rows, tier };
  }

  /**
   * The first or last point of each bucket per metric and group over [from, to), from raw points,
   * in time order; ties in time go to the lowest series id (as the ungrouped read does).
   */
  async groupedEdgeBuckets(q: GroupedEdgeQuery): Promise<GroupedBucket[]> {
    if (q.seriesIds.length === 0 || q.from >= q.to) return [];
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    const ids = p(q.seriesIds);
    const groupCols = q.groupBy
      .map((g, i) => `, ${g.by === 'source' ? 'source' : `tags ->> ${p(g.key)}`} AS g${i}`)
      .join('');
    const groupRefs = q.groupBy.map((_, i) => `, s.g${i}`).join('');
    const sql = `WITH s AS MATERIALIZED (SELECT id, metric${groupCols} FROM series WHERE id = ANY(${ids}::int[]))
      SELECT DISTINCT ON (x.b, s.metric${groupRefs}) (extract(epoch FROM x.b) * 1000)::float8 AS t, s.metric AS m${groupRefs}, x.value::float8 AS v
      FROM (SELECT date_bin(${p(`${q.widthMs / 1000} seconds`)}::interval, time, timestamptz 'epoch') AS b, time, value, series_id
            FROM points WHERE series_id = ANY(${ids}::int[])
              AND time >= ${p(toIso(q.from))}::timestamptz AND time < ${p(toIso(q.to))}::timestamptz) x
      JOIN s ON s.id = x.series_id
      ORDER BY x.b, s.metric${groupRefs}, x.time ${q.which === 'first' ? 'ASC' : 'DESC'}, x.series_id
      LIMIT ${p(q.limit + 1)}`;
    const r = await this.database.readPool.query<Record<string, unknown>>(sql, params);
    return r.rows.map((row) => ({
      t: row.t as number,
      metric: row.m as string,
      group: q.groupBy.map((_, i) => (row[`g${i}`] as string | null) ?? null),
      values: [row.v === null || !Number.isFinite(row.v) ? null : Number(row.v)],
    }));
  }

  /**
   * Plain PostgreSQL: how far the rollups of these series are complete for [from, to) — the
   * watermark, or earlier where late points wait for re-aggregation.
   */
  private async rollupState(ids: number[], from: number, to: number): Promise<RollupState> {
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

  /** One value per bucket that has points, in time order, merged over the segments. */
  private async readBuckets(
    ids: number[],
    widthMs: number,
    aggregation: BucketAggregation,
    segments: readonly Segment[],
  ): Promise<BucketValue[]> {
    if (segments.length === 0) return [];
    const params: unknown[] = [`${widthMs / 1000} seconds`, ids];
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
    const r = await this.database.readPool.query<BucketValue>(sql, params);
    return r.rows;
  }
}
