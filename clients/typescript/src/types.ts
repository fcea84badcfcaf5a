/**
 * The service's request and answer shapes, as it sends them (snake_case fields, ISO 8601 times as
 * strings). See the service's README, "Query", "Summary statistics", "Anomaly detection", "Live streams".
 */

/** A time: a Date, ISO 8601 with a zone, epoch milliseconds, `now` or `now-<N><s|m|h|d|w>`. */
export type TimeInput = Date | string | number;

export type Aggregation = 'avg' | 'sum' | 'min' | 'max' | 'count' | 'first' | 'last';
export type Fill = 'none' | 'null' | 'zero' | 'previous' | 'linear';
/** `auto`, or N followed by s, m, h, d, w (`5m`, `1h`). */
export type Granularity = 'auto' | `${number}${'s' | 'm' | 'h' | 'd' | 'w'}`;
/** Tag filters: different keys must all match, a list means any of its values. */
export type TagFilter = Record<string, string | readonly string[]>;

/** One point to write. Same series (name, source, tags) and same timestamp is one point: last write wins. */
export interface WritePoint {
  name: string;
  value: number;
  /** The writer's default source when absent. */
  source?: string;
  tags?: Record<string, string>;
  unit?: string;
  /** When absent, the time of `write()`: stamped by the client, so a retried batch rewrites the same points. */
  timestamp?: Date | string | number;
}

export interface DataPoint {
  timestamp: string;
  value: number | null;
}

export interface QueryOptions {
  metric: string;
  source?: string;
  tags?: TagFilter;
  /** Default: `to` minus one hour. */
  from?: TimeInput;
  /** Exclusive; default: now. */
  to?: TimeInput;
  granularity?: Granularity;
  aggregation?: Aggregation;
  fill?: Fill;
  /**
   * Splits the answer into `groups`: `source` and/or tag keys, as a list or comma-separated
   * (`'source,host'`). The whole answer stays as without it.
   */
  group_by?: GroupBy;
}

/** `source` and tag keys: `['source', 'host']` or `'source,host'`. */
export type GroupBy = string | readonly string[];

/** One group of a `group_by` answer: the series sharing these values of the keys, bucketed like the whole. */
export interface GroupResult {
  /** Present when group_by names `source`. */
  source?: string | null;
  /** The group's value of each tag key in group_by; null for series without the tag. */
  tags: Record<string, string | null>;
  data_points: DataPoint[];
  total_points: number;
  series_count: number;
}

/** One series of a query's answer (also one entry of a multi query's `results`). */
export interface SeriesResult {
  metric: string;
  source: string | null;
  tags: Record<string, string | string[]>;
  granularity: string;
  aggregation: Aggregation;
  fill: Fill;
  data_points: DataPoint[];
  total_points: number;
  series_count: number;
  /** The rollup tier that served the whole buckets; null: raw points only. */
  rollup: string | null;
  /** With `group_by` only: one entry per group, ordered by the keys' values (null last). */
  groups?: GroupResult[];
}

/** GET /api/v1/metrics/query */
export interface QueryResult extends SeriesResult {
  from: string;
  to: string;
  query_time_ms: number;
}

/** One query of a multi query: its own selector; bounds, granularity, aggregation, fill and group_by override the shared ones. */
export type MultiQueryItem = QueryOptions;

export interface MultiQueryOptions {
  queries: MultiQueryItem[];
  from?: TimeInput;
  to?: TimeInput;
  granularity?: Granularity;
  aggregation?: Aggregation;
  fill?: Fill;
  /** For every query without its own `group_by`. */
  group_by?: GroupBy;
}

/** POST /api/v1/metrics/query/multi. A query on an unknown metric gets empty data and its `error`. */
export interface MultiQueryResult {
  results: Array<SeriesResult & { error?: import('./errors.js').ErrorBody }>;
  from: string;
  to: string;
  query_time_ms: number;
}

export interface SummaryOptions {
  metric: string;
  source?: string;
  tags?: TagFilter;
  from?: TimeInput;
  to?: TimeInput;
  /** More percentiles besides p50, p90, p95, p99 (`[75, 99.9]` adds p75 and p99.9). */
  percentiles?: number[];
}

/** GET /api/v1/metrics/summary: exact, over the stored raw points. Null everywhere but `count` when empty. */
export interface SummaryResult {
  metric: string;
  source: string | null;
  tags: Record<string, string | string[]>;
  time_range: { from: string; to: string };
  statistics: {
    count: number;
    min: number | null;
    max: number | null;
    avg: number | null;
    median: number | null;
    /** Sample standard deviation (n − 1); null below two points. */
    std_dev: number | null;
    /** `p50`, `p90`, `p95`, `p99` and those asked for (`p99.9`). */
    percentiles: Record<string, number | null>;
  };
  series_count: number;
  query_time_ms: number;
}

export type AnomalyAlgorithm = 'auto' | 'isolation_forest' | 'zscore' | 'mad' | 'seasonal';
export type Severity = 'low' | 'medium' | 'high' | 'critical';

export interface AnomalyOptions {
  metric: string;
  source?: string;
  tags?: TagFilter;
  from?: TimeInput;
  to?: TimeInput;
  algorithm?: AnomalyAlgorithm;
  /** 0 < s <= 1, higher finds more (default 0.5). */
  sensitivity?: number;
  /** Analyse buckets instead of raw points. */
  granularity?: Granularity;
  aggregation?: Aggregation;
  direction?: 'both' | 'above' | 'below';
  /** A number in the metric's unit, or a share of the expected value (`"10%"`). */
  min_deviation?: number | `${number}%`;
  /** The baseline's trailing window (`"6h"`). */
  window?: string;
  seed?: number;
  trees?: number;
  subsample?: number;
}

export interface Anomaly {
  timestamp: string;
  value: number;
  score: number;
  severity: Severity;
  context: { baseline_avg: number; deviation: number; expected: number; band_low: number; band_high: number };
  episode: {
    end: string;
    duration_ms: number;
    points: number;
    flagged_points: number;
    peak_timestamp: string;
    peak_value: number;
    peak_score: number;
  };
  source: string | null;
  tags: Record<string, string>;
}

/** POST /api/v1/metrics/anomalies */
export interface AnomalyResult {
  metric: string;
  source: string | null;
  tags: Record<string, string | string[]>;
  time_range: { from: string; to: string };
  anomalies: Anomaly[];
  total_anomalies: number;
  points_analyzed: number;
  series_analyzed: number;
  analysis_time_ms: number;
  parameters: {
    algorithm: AnomalyAlgorithm;
    sensitivity: number;
    direction: 'both' | 'above' | 'below';
    min_deviation: number | string | null;
    granularity: string | null;
    aggregation: Aggregation | null;
    seed: number;
    per_series?: true;
    detector: Record<string, unknown>;
  };
}

/** GET /api/v1/metrics/names */
export interface MetricNamesResult {
  metrics: Array<{
    name: string;
    unit: string | null;
    units: string[];
    series_count: number;
    sources_count: number;
    last_seen: string | null;
  }>;
  total: number;
}

/** GET /api/v1/metrics/sources */
export interface SourcesResult {
  sources: Array<{ name: string; series_count: number; metrics_count: number; last_seen: string | null }>;
  total: number;
}

/** GET /api/v1/metrics/tags */
export interface TagsResult {
  metric: string;
  source: string | null;
  tags: Record<string, string[]>;
  /** Keys with more than 1,000 values (only the first 1,000 are listed). */
  truncated: string[];
}

/** The answer to one accepted ingest request (POST /api/v1/metrics/batch): sent after the commit. */
export interface IngestReply {
  status: 'success';
  metrics_accepted: number;
  timestamp: string;
  batch_id: string;
}

/** A point of the live stream (SSE without `interval`). `value` is null for NaN or ±Infinity. */
export interface StreamPoint {
  metric: string;
  value: number | null;
  timestamp: string;
  source: string;
  unit: string | null;
  tags: Record<string, string>;
}

/** A per-series value of an interval stream (SSE with `interval`): the latest value or a bucket aggregate. */
export interface StreamIntervalValue extends StreamPoint {
  aggregation: 'last' | 'avg' | 'min' | 'max' | 'sum' | 'count';
  interval: number;
  count?: number;
}

/**
 * What the stream iterator yields:
 * - `point`: a committed point (or an interval value), with its event id;
 * - `gap`: the service could not replay everything since the last id (restarted, or too old);
 * - `skipped`: the client read too slowly and the service skipped `count` updates;
 * - `error`: the service reports a transient problem on an interval stream (it goes on).
 */
export type StreamEvent =
  | { type: 'point'; id: string | undefined; data: StreamPoint | StreamIntervalValue }
  | { type: 'gap'; id: string | undefined; data: { reason: string; last_event_id?: string; missed?: string } }
  | { type: 'skipped'; id: string | undefined; data: { count: number; reason: string } }
  | { type: 'error'; id: string | undefined; data: { reason: string } };

export interface StreamOptions {
  /** Metric names (absent: all). */
  metrics?: string[];
  sources?: string[];
  tags?: TagFilter;
  /** Seconds (1 to 3600) or a duration (`"5s"`): per-series values every interval instead of every point. */
  interval?: number | string;
  /** With `interval`: `last` (default) or a bucket aggregate. */
  aggregation?: 'last' | 'avg' | 'min' | 'max' | 'sum' | 'count';
  /** Resume after this event id (as a reconnect does). */
  lastEventId?: string;
  /** Ends the iteration (and the connection) when aborted. */
  signal?: AbortSignal;
  /**
   * Delay before reconnecting after the connection dropped. Default: what the service asked for
   * (its `retry:` field, 3 s), doubling with jitter while reconnects keep failing, up to `maxDelayMs`.
   */
  reconnectDelayMs?: number;
  /** Reconnect attempts in a row without an established connection before the iterator throws (default: forever). */
  maxReconnectAttempts?: number;
}
