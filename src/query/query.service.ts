import { Injectable } from '@nestjs/common';
import { ApiError, invalidQuery, invalidRequest, notFound } from '../common/errors.js';
import { floorTo, toIsoMicros } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Bucket, fillBuckets } from './fill.js';
import { coarsestTier, Segment } from '../storage/rollup-plan.js';
import { GroupKey, RollupReader } from '../storage/rollup-reader.js';
import { QueryRepository } from './query.repository.js';
import { QueryPoint } from './query.serialization.js';
import {
  Aggregation,
  checkText,
  parseEnum,
  parseGranularity,
  parseQuerySpec,
  parseRange,
  parseSelector,
  QueryInput,
  QueryLimits,
  QuerySpec,
  SeriesSelector,
  AGGREGATIONS,
  FILLS,
  GROUP_BY_SOURCE,
  parseGroupBy,
} from './query-spec.js';

export interface SeriesResult {
  metric: string;
  source: string | null;
  tags: Record<string, string | string[]>;
  granularity: string;
  aggregation: string;
  fill: string;
  data_points: QueryPoint[];
  total_points: number;
  series_count: number;
  /** The rollup tier that served the whole buckets, or null when every bucket came from raw points. */
  rollup: string | null;
}

export interface GroupResult {
  /** Present when group_by names source. */
  source?: string | null;
  /** The group's value of each tag key in group_by; null for series without the tag. */
  tags: Record<string, string | null>;
  data_points: QueryPoint[];
  total_points: number;
  series_count: number;
}

const MAX_MULTI_QUERIES = 20;

/** The keys a multi-query body and each of its queries may hold: a misspelt one is a 400, as on the GET routes. */
const MULTI_KEYS = new Set(['queries', 'from', 'to', 'granularity', 'aggregation', 'fill', 'group_by']);
const QUERY_KEYS = new Set([
  'metric',
  'source',
  'tags',
  'from',
  'to',
  'granularity',
  'aggregation',
  'fill',
  'group_by',
]);

function refuseUnknown(o: Record<string, unknown>, known: ReadonlySet<string>, prefix: string): void {
  for (const k of Object.keys(o))
    if (!known.has(k))
      throw invalidQuery(`${prefix}${k}`, `unknown parameter ${prefix}${k}; expected some of ${[...known].join(', ')}`);
}
/** Points (groups × buckets) one grouped answer may hold: bounds its memory whatever QUERY_MAX_GROUPS is. */
export const MAX_GROUPED_POINTS = 1_000_000;
const CATALOGUE_LIMIT = 10_000;

@Injectable()
export class QueryService {
  readonly limits: QueryLimits;

  constructor(
    private readonly repo: QueryRepository,
    private readonly rollups: RollupReader,
    private readonly config: AppConfig,
  ) {
    this.limits = { maxBuckets: config.query.maxBuckets, autoBuckets: config.query.autoBuckets };
  }

  async query(input: QueryInput) {
    const t0 = performance.now();
    const spec = parseQuerySpec(input, Date.now(), this.limits);
    const groupBy = parseGroupBy(input.group_by);
    if (groupBy) {
      const { groups, ...result } = await this.runGrouped(spec, groupBy);
      return { ...result, from: toIsoMicros(spec.from), to: toIsoMicros(spec.to), query_time_ms: elapsed(t0), groups };
    }
    const result = await this.run(spec);
    return { ...result, from: toIsoMicros(spec.from), to: toIsoMicros(spec.to), query_time_ms: elapsed(t0) };
  }

  /** POST /metrics/query/multi: shared from/to/granularity/fill, per-query overrides; run concurrently. */
  async multi(body: unknown) {
    const t0 = performance.now();
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw invalidRequest('Request body must be a JSON object {queries: [...], from, to, granularity}');
    const b = body as Record<string, unknown>;
    refuseUnknown(b, MULTI_KEYS, '');
    if (!Array.isArray(b.queries) || b.queries.length === 0)
      throw invalidQuery('queries', 'queries must be a non-empty array');
    if (b.queries.length > MAX_MULTI_QUERIES)
      throw invalidQuery('queries', `at most ${MAX_MULTI_QUERIES} queries per request`);
    const now = Date.now();
    const shared = parseRange(b, now);
    const groupings: Array<string[] | undefined> = [];
    const specs = b.queries.map((q: unknown, i: number): QuerySpec => {
      const p = `queries[${i}].`;
      if (typeof q !== 'object' || q === null || Array.isArray(q))
        throw invalidQuery(`queries[${i}]`, `queries[${i}] must be an object`);
      refuseUnknown(q as Record<string, unknown>, QUERY_KEYS, p);
      const qi = q as QueryInput;
      // A query may override one bound; the other stays the shared one.
      const range =
        qi.from !== undefined || qi.to !== undefined
          ? parseRange({ from: qi.from ?? b.from, to: qi.to ?? b.to }, now, p)
          : shared;
      const g = parseGranularity(
        qi.granularity ?? b.granularity,
        range,
        this.limits,
        qi.granularity !== undefined ? `${p}granularity` : 'granularity',
      );
      groupings.push(parseGroupBy(qi.group_by ?? b.group_by, qi.group_by !== undefined ? `${p}group_by` : 'group_by'));
      return {
        ...parseSelector(qi, p),
        ...range,
        granularityMs: g.ms,
        granularity: g.label,
        aggregation: parseEnum(
          qi.aggregation ?? b.aggregation,
          AGGREGATIONS,
          qi.aggregation !== undefined ? `${p}aggregation` : 'aggregation',
          'avg',
        ),
        fill: parseEnum(qi.fill ?? b.fill, FILLS, qi.fill !== undefined ? `${p}fill` : 'fill', 'none'),
      };
    });
    const results = await Promise.all(
      specs.map((s, i) => {
        const groupBy = groupings[i];
        return (groupBy ? this.runGrouped(s, groupBy) : this.run(s)).catch((err: unknown) => {
          if (err instanceof ApiError && err.code === 'RESOURCE_NOT_FOUND')
            return { ...emptyResult(s), ...(groupBy ? { groups: [] } : {}), error: err.body() };
          throw err;
        });
      }),
    );
    return { results, from: toIsoMicros(shared.from), to: toIsoMicros(shared.to), query_time_ms: elapsed(t0) };
  }

  async run(spec: QuerySpec): Promise<SeriesResult> {
    // The series, the rollup state and the buckets in one round trip.
    const { ids, rows, segments } = await this.rollups.selectedBuckets(
      this.repo.selection(spec, this.config.query.maxSeries),
      spec.from,
      spec.to,
      spec.granularityMs,
      spec.aggregation,
    );
    await this.checkMatch(spec, ids);
    return this.result(spec, ids, rows, segments);
  }

  /** The answer for the series `ids` from their buckets (no fill yet) and the cover they were read from. */
  private result(spec: QuerySpec, ids: number[], rows: Bucket[], segments: Segment[]): SeriesResult {
    const base = emptyResult(spec);
    if (ids.length === 0 || spec.from === spec.to) return base;
    const filled = fillBuckets(rows, spec.from, spec.to, spec.granularityMs, spec.fill);
    const data_points = filled.map((r) => new QueryPoint(r.t, r.v));
    return {
      ...base,
      data_points,
      total_points: data_points.length,
      series_count: ids.length,
      rollup: coarsestTier(segments)?.label ?? null,
    };
  }

  /**
   * `run` with `group_by`: the same answer (over all the series together) plus one entry per
   * distinct combination of the keys' values among the matching series, each bucketed, aggregated
   * and filled like the whole. A series without a tag key falls in the group where that key is
   * null. Groups are ordered by their values, key by key (code-unit order, null last).
   */
  async runGrouped(spec: QuerySpec, groupBy: string[]): Promise<SeriesResult & { groups: GroupResult[] }> {
    const ids = await this.matchingSeries(spec);
    const keys: GroupKey[] = groupBy.map((k) => (k === GROUP_BY_SOURCE ? { by: 'source' } : { by: 'tag', key: k }));
    const max = this.config.query.maxGroups;
    const found = ids.length > 0 ? await this.repo.seriesGroups(ids, keys, max) : [];
    if (found.length > max) {
      throw invalidQuery(
        'group_by',
        `group_by=${groupBy.join(',')} splits the matching series into more than ${max} groups (QUERY_MAX_GROUPS); filter by source or tags, or group by fewer keys`,
        { max_groups: max },
      );
    }
    const step = spec.granularityMs;
    const buckets = spec.from < spec.to ? Math.ceil((spec.to - floorTo(spec.from, step)) / step) : 0;
    if (found.length * buckets > MAX_GROUPED_POINTS) {
      throw invalidQuery(
        'group_by',
        `${found.length} groups of ${buckets} buckets is more than ${MAX_GROUPED_POINTS} points in one answer; use a coarser granularity, a shorter range or fewer groups`,
        { groups: found.length, buckets, max_points: MAX_GROUPED_POINTS },
      );
    }
    const limit = Math.max(1, found.length * buckets);
    // The whole answer from the series already found (the series table is read once).
    const [whole, rows] = await Promise.all([
      ids.length > 0 && spec.from < spec.to
        ? this.rollups
            .buckets(ids, spec.from, spec.to, spec.granularityMs, spec.aggregation)
            .then((r) => this.result(spec, ids, r.rows, r.segments))
        : emptyResult(spec),
      this.groupedRows(spec, ids, keys, limit),
    ]);
    const perGroup = new Map<string, Bucket[]>();
    for (const r of rows) {
      const k = JSON.stringify(r.group);
      const list = perGroup.get(k);
      if (list) list.push({ t: r.t, v: r.values[0] });
      else perGroup.set(k, [{ t: r.t, v: r.values[0] }]);
    }
    const groups = found
      .sort((a, b) => compareGroups(a.values, b.values))
      .map((g): GroupResult => {
        const filled = fillBuckets(perGroup.get(JSON.stringify(g.values)) ?? [], spec.from, spec.to, step, spec.fill);
        const data_points = filled.map((r) => new QueryPoint(r.t, r.v));
        // fromEntries: a tag key such as __proto__ stays an own key of the object.
        const tags: Record<string, string | null> = Object.fromEntries(
          keys.flatMap((k, i) => (k.by === 'tag' ? [[k.key, g.values[i]]] : [])),
        );
        const at = keys.findIndex((k) => k.by === 'source');
        return {
          ...(at >= 0 ? { source: g.values[at] } : {}),
          tags,
          data_points,
          total_points: data_points.length,
          series_count: g.series_count,
        };
      });
    return { ...whole, groups };
  }

  /** Bucket rows of each group, in time order. */
  private async groupedRows(spec: QuerySpec, ids: number[], groupBy: GroupKey[], limit: number) {
    if (ids.length === 0 || spec.from >= spec.to) return [];
    const { from, to, granularityMs: widthMs, aggregation } = spec;
    if (aggregation === 'first' || aggregation === 'last')
      return this.rollups.groupedEdgeBuckets({ seriesIds: ids, from, to, widthMs, which: aggregation, groupBy, limit });
    const segments = await this.rollups.cover(ids, from, to, widthMs, aggregation);
    const r = await this.rollups.groupedBuckets(
      { seriesIds: ids, widthMs, functions: [aggregation], groupBy, limit, rawCovers: true },
      segments,
    );
    return r?.rows ?? [];
  }

  /**
   * Buckets of the given series over [from, to), planned over raw points and rollups exactly as
   * `run` plans them (no fill). For callers that select series themselves (anomalies, exports).
   */
  bucketsOf(
    ids: number[],
    from: number,
    to: number,
    granularityMs: number,
    aggregation: Aggregation,
  ): Promise<{ rows: Bucket[]; segments: Segment[] }> {
    return this.rollups.buckets(ids, from, to, granularityMs, aggregation);
  }

  /** Series ids for a selector: 404 for a metric never seen, 400 past QUERY_MAX_SERIES. */
  async matchingSeries(sel: SeriesSelector): Promise<number[]> {
    const ids = await this.repo.seriesIds(sel, this.config.query.maxSeries);
    await this.checkMatch(sel, ids);
    return ids;
  }

  /** 404 for a metric never seen, 400 past QUERY_MAX_SERIES (`ids` holds at most one more than that). */
  private async checkMatch(sel: SeriesSelector, ids: number[]): Promise<void> {
    const max = this.config.query.maxSeries;
    if (ids.length > max) {
      throw invalidQuery(
        'metric',
        `${sel.metric} matches more than ${max} series (QUERY_MAX_SERIES); filter by source or tags`,
        { max_series: max },
      );
    }
    if (ids.length === 0 && !(await this.repo.metricExists(sel.metric))) {
      throw notFound(`Requested metric not available: ${sel.metric}`, { metric: sel.metric });
    }
  }

  async names(search?: unknown) {
    if (search !== undefined && typeof search !== 'string')
      throw invalidQuery('search', 'search must be given once, as a string');
    if (search) checkText(search, 'search');
    const found = await this.repo.metricNames(search || undefined, CATALOGUE_LIMIT + 1);
    const rows = found.slice(0, CATALOGUE_LIMIT);
    return {
      metrics: rows.map((r) => ({
        name: r.name,
        unit: r.units[0] ?? null,
        units: r.units,
        series_count: r.series_count,
        sources_count: r.sources_count,
        last_seen: r.last_seen?.toISOString() ?? null,
      })),
      total: rows.length,
      truncated: found.length > CATALOGUE_LIMIT,
    };
  }

  async sources(metric?: unknown) {
    if (metric !== undefined && typeof metric !== 'string')
      throw invalidQuery('metric', 'metric must be given once, as a string');
    if (metric) checkText(metric, 'metric');
    const found = await this.repo.sources(metric || undefined, CATALOGUE_LIMIT + 1);
    const rows = found.slice(0, CATALOGUE_LIMIT);
    return {
      sources: rows.map((r) => ({
        name: r.name,
        series_count: r.series_count,
        metrics_count: r.metrics_count,
        last_seen: r.last_seen?.toISOString() ?? null,
      })),
      total: rows.length,
      truncated: found.length > CATALOGUE_LIMIT,
    };
  }

  async tags(metric: unknown, source: unknown) {
    if (typeof metric !== 'string' || metric === '') throw invalidQuery('metric', 'metric is required');
    if (source !== undefined && typeof source !== 'string') throw invalidQuery('source', 'source must be a string');
    checkText(metric, 'metric');
    if (source) checkText(source, 'source');
    const perKey = 1000;
    const rows = await this.repo.tags(metric, source || undefined, perKey);
    if (rows.length === 0 && !(await this.repo.metricExists(metric)))
      throw notFound(`Requested metric not available: ${metric}`, { metric });
    return {
      metric,
      source: source || null,
      tags: Object.fromEntries(rows.map((r) => [r.key, r.values])),
      truncated: rows.filter((r) => r.value_count > perKey).map((r) => r.key),
    };
  }
}

function emptyResult(spec: QuerySpec): SeriesResult {
  return {
    metric: spec.metric,
    source: spec.source ?? null,
    tags: Object.fromEntries(spec.tags.map((t) => [t.key, t.values.length === 1 ? t.values[0] : t.values])),
    granularity: spec.granularity,
    aggregation: spec.aggregation,
    fill: spec.fill,
    data_points: [],
    total_points: 0,
    series_count: 0,
    rollup: null,
  };
}

/** Group values key by key: code-unit order, null after every value. */
export function compareGroups(a: ReadonlyArray<string | null>, b: ReadonlyArray<string | null>): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i],
      y = b[i];
    if (x === y) continue;
    if (x === null) return 1;
    if (y === null) return -1;
    return x < y ? -1 : 1;
  }
  return 0;
}

const elapsed = (t0: number) => Math.round((performance.now() - t0) * 100) / 100;
