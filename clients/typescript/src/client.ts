import { FetchLike, gzip, RetryEvent, Transport } from './http.js';
import { resolveRetry, RetryOptions } from './retry.js';
import { MetricStream } from './stream.js';
import type {
  AnomalyOptions,
  AnomalyResult,
  GroupBy,
  IngestReply,
  MetricNamesResult,
  MultiQueryOptions,
  MultiQueryResult,
  QueryOptions,
  QueryResult,
  SourcesResult,
  StreamOptions,
  SummaryOptions,
  SummaryResult,
  TagFilter,
  TagsResult,
  TimeInput,
  WritePoint,
} from './types.js';
import { encodeBatch, PointWriter, WriterOptions } from './writer.js';

export interface ClientOptions {
  /** The service: `http://localhost:8080` (a trailing `/api/v1`, as the reference writes it, is fine too). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` on every request, the stream included. */
  apiKey?: string;
  /** Retries of 429, 503 and network failures. */
  retry?: RetryOptions;
  /** Per attempt, answer included (default 30 s; 0: none). Not applied to the stream, which has its idle timeout. */
  timeoutMs?: number;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Another fetch (a proxy agent, a test double). Default: the global fetch. */
  fetch?: FetchLike;
  /** Told before each retry. */
  onRetry?: (e: RetryEvent) => void;
  /** The stream is reopened when no byte came for this long (default 45 s: three of the service's 15 s keep-alives). */
  streamIdleTimeoutMs?: number;
  /**
   * `gzip`: ingest bodies are sent gzip-compressed (`Content-Encoding: gzip`; the service's limits
   * apply to the decoded size). About 6% of the bytes for about 2 µs of CPU per point. Default `none`.
   */
  compression?: 'gzip' | 'none';
  /** [0, 1) for the jitter; for tests. */
  random?: () => number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/**
 * A client of one Timescope service. Every method retries 429, 503 and network failures with
 * exponential backoff and full jitter (Retry-After honoured) and throws TimescopeApiError on any
 * other error answer.
 */
export class TimescopeClient {
  private readonly transport: Transport;
  private readonly streamIdleTimeoutMs: number;

  constructor(private readonly options: ClientOptions) {
    if (!options || typeof options.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl))
      throw new TypeError('baseUrl must be an http(s) URL, e.g. http://localhost:8080');
    if (options.compression !== undefined && options.compression !== 'gzip' && options.compression !== 'none')
      throw new TypeError(`compression must be 'gzip' or 'none' (got ${String(options.compression)})`);
    this.transport = new Transport({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      headers: options.headers,
      fetch: options.fetch,
      retry: resolveRetry(options.retry),
      timeoutMs: options.timeoutMs ?? 30_000,
      onRetry: options.onRetry,
      random: options.random,
    });
    this.streamIdleTimeoutMs = options.streamIdleTimeoutMs ?? 45_000;
  }

  /** The service root every path is appended to. */
  get baseUrl(): string {
    return this.transport.root;
  }

  /**
   * A batching writer: `await writer.write(point)` buffers (and waits only under backpressure),
   * `flush()` resolves once everything written is committed, `close()` flushes and stops.
   */
  writer(options: WriterOptions = {}): PointWriter {
    // Through ingest(), as writePoints goes: batches are compressed like any other ingest body.
    return new PointWriter((body) => this.ingest(body), options);
  }

  /** Writes these points now, in one request (no buffering); resolves after the commit. */
  async writePoints(
    points: readonly WritePoint[],
    options: { source?: string } & CallOptions = {},
  ): Promise<IngestReply> {
    return this.ingest(encodeBatch(points, options.source), options.signal);
  }

  /** Buckets of one metric (`GET /api/v1/metrics/query`). */
  query(q: QueryOptions, options: CallOptions = {}): Promise<QueryResult> {
    const p = selectorParams(q);
    set(p, 'granularity', q.granularity);
    set(p, 'aggregation', q.aggregation);
    set(p, 'fill', q.fill);
    set(p, 'group_by', groupBy(q.group_by));
    return this.get('/api/v1/metrics/query', p, options);
  }

  /** Several metrics over one range, run concurrently (`POST /api/v1/metrics/query/multi`). */
  queryMulti(q: MultiQueryOptions, options: CallOptions = {}): Promise<MultiQueryResult> {
    const body = {
      queries: q.queries.map((x) => ({
        metric: x.metric,
        source: x.source,
        tags: x.tags,
        from: time(x.from),
        to: time(x.to),
        granularity: x.granularity,
        aggregation: x.aggregation,
        fill: x.fill,
        group_by: groupBy(x.group_by),
      })),
      from: time(q.from),
      to: time(q.to),
      granularity: q.granularity,
      aggregation: q.aggregation,
      fill: q.fill,
      group_by: groupBy(q.group_by),
    };
    return this.post('/api/v1/metrics/query/multi', body, options);
  }

  /** Exact statistics of the stored points (`GET /api/v1/metrics/summary`). */
  summary(q: SummaryOptions, options: CallOptions = {}): Promise<SummaryResult> {
    const p = selectorParams(q);
    if (q.percentiles?.length) p.set('percentiles', q.percentiles.join(','));
    return this.get('/api/v1/metrics/summary', p, options);
  }

  /** Anomaly detection (`POST /api/v1/metrics/anomalies`). */
  anomalies(q: AnomalyOptions, options: CallOptions = {}): Promise<AnomalyResult> {
    return this.post('/api/v1/metrics/anomalies', { ...q, from: time(q.from), to: time(q.to) }, options);
  }

  /** Metric names with units and series counts (`GET /api/v1/metrics/names`). */
  metricNames(q: { search?: string } = {}, options: CallOptions = {}): Promise<MetricNamesResult> {
    const p = new URLSearchParams();
    set(p, 'search', q.search);
    return this.get('/api/v1/metrics/names', p, options);
  }

  /** Sources, of one metric or of all (`GET /api/v1/metrics/sources`). */
  sources(q: { metric?: string } = {}, options: CallOptions = {}): Promise<SourcesResult> {
    const p = new URLSearchParams();
    set(p, 'metric', q.metric);
    return this.get('/api/v1/metrics/sources', p, options);
  }

  /** Tag keys of a metric and their values (`GET /api/v1/metrics/tags`). */
  tags(q: { metric: string; source?: string }, options: CallOptions = {}): Promise<TagsResult> {
    const p = new URLSearchParams();
    set(p, 'metric', q.metric);
    set(p, 'source', q.source);
    return this.get('/api/v1/metrics/tags', p, options);
  }

  /**
   * The live stream (`GET /api/v1/metrics/stream`, Server-Sent Events read over fetch so that the
   * key goes in a header): `for await (const e of client.stream({metrics: ['cpu']}))`.
   * Reconnects with Last-Event-ID after a drop; stops on `break`, `close()` or the signal.
   */
  stream(options: StreamOptions = {}): MetricStream {
    return new MetricStream(this.transport, options, {
      policy: resolveRetry(this.options.retry),
      idleTimeoutMs: this.streamIdleTimeoutMs,
      random: this.options.random,
    });
  }

  /** One batch body, compressed once (its retries send the same bytes). */
  private async ingest(body: string, signal?: AbortSignal): Promise<IngestReply> {
    if (this.options.compression !== 'gzip')
      return this.transport.request<IngestReply>('POST', '/api/v1/metrics/batch', { body, signal });
    return this.transport.request<IngestReply>('POST', '/api/v1/metrics/batch', {
      body: await gzip(body),
      headers: { 'content-encoding': 'gzip' },
      signal,
    });
  }

  private get<T>(path: string, query: URLSearchParams, options: CallOptions): Promise<T> {
    return this.transport.request<T>('GET', path, { query, signal: options.signal });
  }

  private post<T>(path: string, body: unknown, options: CallOptions): Promise<T> {
    return this.transport.request<T>('POST', path, { body: JSON.stringify(body), signal: options.signal });
  }
}

/** A time as the service reads it: Dates as ISO 8601, numbers as epoch ms, strings (`now-1h`) as given. */
export function time(t: TimeInput | undefined): string | undefined {
  if (t === undefined) return undefined;
  if (t instanceof Date) {
    if (Number.isNaN(t.getTime())) throw new RangeError('invalid Date');
    return t.toISOString();
  }
  return String(t);
}

/** group_by as the service documents it: comma-separated names. */
function groupBy(g: GroupBy | undefined): string | undefined {
  if (g === undefined) return undefined;
  return typeof g === 'string' ? g : g.join(',');
}

function selectorParams(q: {
  metric: string;
  source?: string;
  tags?: TagFilter;
  from?: TimeInput;
  to?: TimeInput;
}): URLSearchParams {
  const p = new URLSearchParams();
  p.set('metric', q.metric);
  set(p, 'source', q.source);
  for (const [k, v] of Object.entries(q.tags ?? {}))
    for (const x of typeof v === 'string' ? [v] : v) p.append('tags', `${k}:${x}`);
  set(p, 'from', time(q.from));
  set(p, 'to', time(q.to));
  return p;
}

function set(p: URLSearchParams, k: string, v: string | undefined): void {
  if (v !== undefined && v !== '') p.set(k, v);
}
