import { Injectable } from '@nestjs/common';
import { floorTo, MINUTE, toIsoMicros } from '../common/time.js';
import { Database } from '../database/database.js';
import { readTimestamptzMs } from '../database/pg-timestamp.js';
import { bucketRuns, coarsestTier, planSegments, RollupState, Segment } from './rollup-plan.js';
import { ROLLUP_AGGREGATIONS, RollupTier } from './tiers.js';

/** Aggregations of points per bucket; avg, sum, min, max and count can come from rollups. */
export type BucketAggregation = 'avg' | 'sum' | 'min' | 'max' | 'count' | 'first' | 'last';
export type RollupAggregation = Exclude<BucketAggregation, 'first' | 'last'>;

/** One bucket of the series merged: its start (epoch ms) and value. */
export interface BucketValue {
  t: number;
  v: number | null;
}

/**
 * Which series to read, as a reviewed SQL condition on the `series` table with its parameters
 * ($1, $2, … in `params`), and at most how many (`limit` + 1 come back, to tell it was cut).
 */
export interface SeriesSelection {
  where: string;
  params: unknown[];
  limit: number;
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
 * contribute, how the contributions merge per bucket, the aggregate over raw points alone, and
 * the value of one rollup row that is a whole bucket by itself.
 */
const FRAGMENTS: Record<
  RollupAggregation,
  { raw: string; rollup: string; outer: string; direct: string; row: string }
> = {
  avg: {
    raw: '1::float8 AS c, value AS s',
    rollup: 'count::float8 AS c, sum AS s',
    outer: 'sum(s) / sum(c)',
    direct: 'sum(value) / count(*)', // avg(float8) also sums squares, which overflow from about 1.3e154
    row: 'sum / count::float8',
  },
  sum: { raw: 'value AS s', rollup: 'sum AS s', outer: 'sum(s)', direct: 'sum(value)', row: 'sum' },
  count: { raw: '1::float8 AS c', rollup: 'count::float8 AS c', outer: 'sum(c)', direct: 'count(*)', row: 'count' },
  min: { raw: 'value AS m', rollup: 'min AS m', outer: 'min(m)', direct: 'min(value)', row: 'min' },
  max: { raw: 'value AS m', rollup: 'max AS m', outer: 'max(m)', direct: 'max(value)', row: 'max' },
};

/**
 * A bucket's start as epoch ms, in float8 arithmetic: `extract(epoch …)` is numeric, and numeric
 * arithmetic on every bucket of a long range was a measurable part of a query's time. Bucket
 * starts are whole milliseconds, so rounding the float8 product gives them exactly.
 */
const bucketMs = (expr: string) => `round(date_part('epoch', ${expr}) * 1000)`;

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
 * complete on read (real-time aggregation) except where late points wait for the next refresh,
 * plain PostgreSQL's rollup tables only below their watermark, and earlier where late points wait
 * for re-aggregation. Above that, callers get the same buckets from either flavour, equal to
 * aggregating the raw points. Bounds go to SQL to the microsecond (toIsoMicros): a query's `from`
 * and `to` may hold microseconds, as points do.
 */
@Injectable()
export class RollupReader {
  /**
   * The latest watermark seen (plain PostgreSQL; Infinity on TimescaleDB), to plan a read before
   * the state is known: a plan made for an earlier watermark than the real one is still right (it
   * reads more raw points).
   */
  private knownWatermark: number | undefined;

  /** TimescaleDB: continuous aggregates with real-time aggregation. */
  private readonly realtime: boolean;

  constructor(private readonly database: Database) {
    this.realtime = database.info.flavour === 'timescaledb';
    // Real-time aggregates are complete above their own watermark: only late ranges matter.
    if (this.realtime) this.knownWatermark = Infinity;
  }

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
    const state = ROLLUP_AGGREGATIONS.has(aggregation)
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
   * The series of a selection and their buckets in one statement (one round trip): the series ids,
   * the rollup state of those series over the range and the buckets, planned for the last
   * watermark seen. Only when the state turns out to be behind that plan (late points waiting for
   * re-aggregation, or the first read of this instance) are the buckets read again, planned for
   * the real state.
   */
  async selectedBuckets(
    selection: SeriesSelection,
    from: number,
    to: number,
    widthMs: number,
    aggregation: BucketAggregation,
  ): Promise<{ ids: number[]; rows: BucketValue[]; segments: Segment[] }> {
    const tracked = ROLLUP_AGGREGATIONS.has(aggregation);
    if (tracked && this.knownWatermark === undefined) {
      // The first read of this instance: learn the watermark, or a long range would be planned on raw points.
      const r = await this.database.readPool.query<{ w: number | null }>(
        `SELECT (extract(epoch FROM watermark) * 1000)::float8 AS w FROM rollup_state WHERE id = 1`,
      );
      const w = r.rows[0]?.w;
      if (w !== null && w !== undefined) this.knownWatermark = w;
    }
    const assumed: RollupState = { materialisedUntil: tracked ? (this.knownWatermark ?? -Infinity) : Infinity };
    const segments = planSegments(from, to, widthMs, aggregation, assumed);
    const params = [...selection.params];
    const p = (v: unknown) => `$${params.push(v)}`;
    const state = tracked
      ? stateSql('(SELECT ids FROM sel)', p(toIsoMicros(from)), p(toIsoMicros(to)), this.realtime)
      : `SELECT NULL::float8 AS w, NULL::float8 AS late`;
    // Past the limit the caller refuses the query: read no buckets then.
    const limit = `${p(selection.limit)}::int`;
    const buckets =
      from < to && segments.length > 0
        ? this.bucketsSql(
            `(SELECT ids FROM sel WHERE cardinality(ids) <= ${limit})::int[]`,
            params,
            widthMs,
            aggregation,
            segments,
          )
        : `SELECT NULL::timestamptz AS t, NULL::float8 AS v WHERE false`;
    // One row: the buckets come back as two arrays (BUCKET_ARRAYS), not a row each. Parsing a row
    // per bucket was most of the service's own time on a day of 5m buckets (pg's row objects and
    // field strings).
    const sql = `WITH sel AS MATERIALIZED (
        SELECT coalesce(array_agg(id ORDER BY id), '{}')::int[] AS ids
        FROM (SELECT id FROM series WHERE ${selection.where} ORDER BY id LIMIT ${limit} + 1) s),
      st AS (${state}),
      b AS (${buckets}),
      x AS (SELECT ${BUCKET_ARRAYS} FROM b)
      SELECT (SELECT ids FROM sel) AS ids, st.w, st.late, x.ts, x.vs FROM st, x`;
    const r = await this.database.preparedRead<
      BucketArrays & { ids: number[] | null; w: number | null; late: number | null }
    >(sql, params);
    const head = r.rows[0];
    const ids = head?.ids ?? [];
    const rows = zipBuckets(head?.ts, head?.vs);
    if (!tracked) return { ids, rows, segments };
    if (head?.w !== null && head?.w !== undefined)
      this.knownWatermark = Math.max(this.knownWatermark ?? -Infinity, head.w);
    const actual = materialisedUntil(head?.w ?? null, head?.late ?? null);
    if (actual >= assumed.materialisedUntil || ids.length === 0 || ids.length > selection.limit)
      return { ids, rows, segments };
    const replanned = planSegments(from, to, widthMs, aggregation, { materialisedUntil: actual });
    return { ids, rows: await this.readBuckets(ids, widthMs, aggregation, replanned), segments: replanned };
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
        `${col} >= ${p(toIsoMicros(seg.from))}::timestamptz AND ${col} < ${p(toIsoMicros(seg.to))}::timestamptz`;
      return seg.tier
        ? `SELECT date_bin(${interval}::interval, r.bucket, timestamptz 'epoch') AS b, r.series_id, sum(r.count::float8) AS c, sum(r.sum) AS sm, min(r.min) AS mn, max(r.max) AS mx
           FROM ${seg.tier.table} r WHERE r.series_id = ANY(${ids}::int[]) AND ${within('r.bucket')} GROUP BY 1, 2`
        : `SELECT date_bin(${interval}::interval, p.time, timestamptz 'epoch') AS b, p.series_id, count(*)::float8 AS c, sum(p.value) AS sm, min(p.value) AS mn, max(p.value) AS mx
           FROM points p WHERE p.series_id = ANY(${ids}::int[]) AND ${within('p.time')} GROUP BY 1, 2`;
    });
    const sql = `WITH s AS MATERIALIZED (SELECT id, metric${groupCols} FROM series WHERE id = ANY(${ids}::int[])),
      q AS (${parts.join(' UNION ALL ')})
      SELECT ${bucketMs('x.b')} AS t, x.* FROM (
        SELECT q.b, s.metric AS m${groupRefs}, ${q.functions.map((f) => `(${MERGE[f]})::float8 AS "${f}"`).join(', ')}
        FROM q JOIN s ON s.id = q.series_id
        GROUP BY ${['1', '2', ...q.groupBy.map((_, i) => String(i + 3))].join(', ')}
      ) x ORDER BY 1 LIMIT ${p(q.limit + 1)}`;
    const r = await this.database.preparedRead<Record<string, unknown>>(sql, params);
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
      SELECT DISTINCT ON (x.b, s.metric${groupRefs}) ${bucketMs('x.b')} AS t, s.metric AS m${groupRefs}, x.value::float8 AS v
      FROM (SELECT date_bin(${p(`${q.widthMs / 1000} seconds`)}::interval, time, timestamptz 'epoch') AS b, time, value, series_id
            FROM points WHERE series_id = ANY(${ids}::int[])
              AND time >= ${p(toIsoMicros(q.from))}::timestamptz AND time < ${p(toIsoMicros(q.to))}::timestamptz) x
      JOIN s ON s.id = x.series_id
      ORDER BY x.b, s.metric${groupRefs}, x.time ${q.which === 'first' ? 'ASC' : 'DESC'}, x.series_id
      LIMIT ${p(q.limit + 1)}`;
    const r = await this.database.preparedRead<Record<string, unknown>>(sql, params);
    return r.rows.map((row) => ({
      t: row.t as number,
      metric: row.m as string,
      group: q.groupBy.map((_, i) => (row[`g${i}`] as string | null) ?? null),
      values: [row.v === null || !Number.isFinite(row.v) ? null : Number(row.v)],
    }));
  }

  /**
   * How far the rollups of these series are complete for [from, to): the watermark (TimescaleDB:
   * everywhere), or earlier where late points wait for re-aggregation.
   */
  private async rollupState(ids: number[], from: number, to: number): Promise<RollupState> {
    const r = await this.database.preparedRead<{ w: number | null; late: number | null }>(
      stateSql('$1::int[]', '$2', '$3', this.realtime),
      [ids, toIsoMicros(from), toIsoMicros(to)],
    );
    const row = r.rows[0];
    if (row?.w !== null && row?.w !== undefined)
      this.knownWatermark = Math.max(this.knownWatermark ?? -Infinity, row.w);
    return { materialisedUntil: materialisedUntil(row?.w ?? null, row?.late ?? null) };
  }

  /** One value per bucket that has points, in time order, merged over the segments. */
  private async readBuckets(
    ids: number[],
    widthMs: number,
    aggregation: BucketAggregation,
    segments: readonly Segment[],
  ): Promise<BucketValue[]> {
    if (segments.length === 0) return [];
    const params: unknown[] = [ids];
    const sql = `WITH b AS (${this.bucketsSql('$1::int[]', params, widthMs, aggregation, segments)})
      SELECT ${BUCKET_ARRAYS} FROM b`;
    const r = await this.database.preparedRead<BucketArrays>(sql, params);
    return zipBuckets(r.rows[0]?.ts, r.rows[0]?.vs);
  }

  /**
   * The statement reading buckets (t, v) of the series `ids` (an int[] expression) from the
   * segments, one row per bucket in no particular order (callers read it through BUCKET_ARRAYS
   * and zipBuckets, which orders); appends its parameters to `params`.
   */
  private bucketsSql(
    ids: string,
    params: unknown[],
    widthMs: number,
    aggregation: BucketAggregation,
    segments: readonly Segment[],
  ): string {
    const width = `$${params.push(`${widthMs / 1000} seconds`)}::interval`;
    const within = (col: string, s: Segment) =>
      `${col} >= $${params.push(toIsoMicros(s.from))}::timestamptz AND ${col} < $${params.push(toIsoMicros(s.to))}::timestamptz`;
    if (aggregation === 'first' || aggregation === 'last') {
      // planSegments never uses a rollup for these: one raw segment.
      const [s] = segments;
      return `SELECT DISTINCT ON (b) b AS t, value AS v
             FROM (SELECT date_bin(${width}, time, timestamptz 'epoch') AS b, time, value, series_id
                   FROM points WHERE series_id = ANY(${ids}) AND ${within('time', s)}) x
             ORDER BY b, time ${aggregation === 'first' ? 'ASC' : 'DESC'}, series_id`;
    }
    if (segments.length === 1 && !segments[0].tier) {
      const [s] = segments;
      return `SELECT date_bin(${width}, time, timestamptz 'epoch') AS t, ${FRAGMENTS[aggregation].direct}::float8 AS v
             FROM points WHERE series_id = ANY(${ids}) AND ${within('time', s)}
             GROUP BY 1`;
    }
    const f = FRAGMENTS[aggregation];
    const read = (s: Segment, gate = '') => {
      const [col, cols, table] = s.tier ? ['bucket', f.rollup, s.tier.table] : ['time', f.raw, 'points'];
      return `SELECT date_bin(${width}, ${col}, timestamptz 'epoch') AS b, ${cols} FROM ${table}
                WHERE series_id = ANY(${ids}) AND ${within(col, s)}${gate}`;
    };
    const merged = (reads: string[]) =>
      `SELECT b AS t, (${f.outer})::float8 AS v FROM (${reads.join(' UNION ALL ')}) parts GROUP BY b`;
    // Runs of segments that share no bucket with another run are merged each on its own. A tier
    // whose buckets are the query's holds one row per series and bucket: for one series that row
    // is the answer, and only several series need the merge (the other branch is skipped at run time).
    const pieces = bucketRuns(segments, widthMs).flatMap((run) => {
      const [s] = run;
      if (run.length > 1 || s.tier?.ms !== widthMs) return [merged(run.map((x) => read(x)))];
      return [
        `SELECT bucket AS t, (${f.row})::float8 AS v FROM ${s.tier.table}
                WHERE series_id = ANY(${ids}) AND ${within('bucket', s)} AND cardinality(${ids}) = 1`,
        merged([read(s, ` AND cardinality(${ids}) > 1`)]),
      ];
    });
    return pieces.join(' UNION ALL ');
  }
}

/**
 * The buckets `b` (t timestamptz, v float8) of a bucket read as two byte strings, one row in all:
 * the times as PostgreSQL's binary timestamptz (`timestamptz_send`: big-endian int64 microseconds
 * since 2000-01-01 UTC), the values as big-endian float8s (`float8send`). Both aggregates of one
 * row read the same rows in the same order, so the strings pair up; zipBuckets puts them in time
 * order. They are not sorted here: on PostgreSQL 15 each `… ORDER BY t` aggregate sorted its own
 * input, 0.05 of the 1-day read's 0.32 ms (pgbench), while the rows mostly come in time order
 * already (segments in time order, a tier's rows from its index in bucket order). Bytes rather
 * than JSON arrays (`json_agg`): PostgreSQL writes no decimal text and the service parses none (on
 * the query bench's 1-day read a statement took 0.31-0.35 ms against 0.36-0.43 ms, a loop of 2,000
 * over `pg`, PostgreSQL 15). The times as timestamps rather than epoch-ms float8s: computing
 * `round(date_part('epoch', b) * 1000)` per bucket was a seventh of that statement's time (0.83 →
 * 0.72 ms on a slower machine, three loops of 3,000). A null value is written as NULL_VALUE_HEX,
 * a signalling NaN, which no arithmetic makes (operations quiet a signalling NaN, setting bit 51).
 */
const NULL_VALUE_HEX = '7ff4dead00000000';
export const BUCKET_ARRAYS = `string_agg(timestamptz_send(b.t), ''::bytea) AS ts, string_agg(coalesce(float8send(b.v::float8), '\\x${NULL_VALUE_HEX}'::bytea), ''::bytea) AS vs`;
const NULL_VALUE_HIGH = 0x7ff4dead;
interface BucketArrays {
  ts: Buffer | null;
  vs: Buffer | null;
}

/** Buckets in time order from the parallel byte strings of times and values that a bucket read returns (null when there are none). */
export function zipBuckets(ts: Buffer | null | undefined, vs: Buffer | null | undefined): BucketValue[] {
  if (!ts || !vs) return [];
  const n = ts.length >>> 3;
  if (vs.length !== ts.length || ts.length % 8 !== 0)
    throw new Error(`bucket read returned ${ts.length} time bytes and ${vs.length} value bytes`);
  const out: BucketValue[] = new Array(n);
  let sorted = true;
  for (let i = 0, o = 0; i < n; i++, o += 8) {
    const t = Math.round(readTimestamptzMs(ts, o)); // bucket starts are whole ms
    const v = vs.readUInt32BE(o) === NULL_VALUE_HIGH && vs.readUInt32BE(o + 4) === 0 ? null : vs.readDoubleBE(o);
    out[i] = { t, v };
    if (i > 0 && t < out[i - 1].t) sorted = false;
  }
  return sorted ? out : out.sort((a, b) => a.t - b.t);
}

/**
 * The rollup state of the series `ids` (an int[] expression) over [from, to) (parameter
 * references, ISO times): the watermark `w` and the start of the earliest late range `late`, epoch ms.
 */
function stateSql(ids: string, from: string, to: string, realtime: boolean): string {
  // TimescaleDB: real-time aggregates are complete but where late points wait (w: Infinity).
  return `SELECT ${realtime ? `'Infinity'::float8` : `(extract(epoch FROM watermark) * 1000)::float8`} AS w,
            (SELECT (extract(epoch FROM min(i.from_time)) * 1000)::float8 FROM rollup_invalidations i
             WHERE i.series_ids && ${ids} AND i.to_time >= ${from}::timestamptz AND i.from_time < ${to}::timestamptz) AS late
          FROM rollup_state WHERE id = 1`;
}

/** Where rollups stop being complete: the watermark, or earlier where late points wait (from the minute they start). */
function materialisedUntil(watermark: number | null, late: number | null): number {
  const until = watermark ?? -Infinity;
  return late === null ? until : Math.min(until, floorTo(late, MINUTE));
}
