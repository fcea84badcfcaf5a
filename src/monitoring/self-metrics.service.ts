import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hostname } from 'node:os';
import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RouteAccess } from '../auth/access.js';
import { FrontDoor } from '../auth/front-door.js';
import { errorCodeOf } from '../common/error-envelope.js';
import { VERSION } from '../common/version.js';
import { AppConfig, RATE_CLASSES } from '../config/config.js';
import { Database } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import { WindowStats } from '../performance/window-stats.js';
import { isQueryRoute } from '../performance/performance.service.js';
import { PointBatchBuilder } from '../storage/point-batch.js';
import { PointWriter } from '../storage/point-writer.js';
import { SeriesResolver } from '../storage/series-resolver.js';
import { StreamHub } from '../streaming/stream-hub.js';
import { WebhookService } from '../webhooks/webhook.service.js';
import {
  bucketIndex,
  cloneFigures,
  delta,
  emptyFigures,
  errorKey,
  Figures,
  jobKey,
  LATENCY_BUCKETS,
  Sample,
  samplePoints,
  SELF_SOURCE,
  statusClass,
  totalRequests,
} from './figures.js';

export const PERSIST_JOB = 'self-metrics-persist';
/** The writer's `origin` of the self-metrics' own points (left out of the ingest figures they store). */
export const SELF_ORIGIN = 'self';

const QUERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const TRANSACTION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const TRANSACTION_POINTS_BUCKETS = [1, 10, 100, 1_000, 10_000, 100_000];

let processWide: Registry | undefined;

/**
 * The process's default metrics (process_*, nodejs_*: CPU, memory, heap, event loop lag, GC,
 * handles), without a prefix so that stock Node.js dashboards and alerts apply. One registry per
 * process, shared by every app in it: their collectors (a GC observer, an event-loop delay monitor)
 * cannot be stopped, so making them per app would leak one set per app (tests start many).
 */
export function processRegistry(): Registry {
  if (!processWide) {
    processWide = new Registry();
    collectDefaultMetrics({ register: processWide });
  }
  return processWide;
}

type Labels = Record<string, string>;

/**
 * Timescope's own metrics, one prom-client Registry per app (never prom-client's global one: tests
 * start many apps in one process). Recorded cheaply where things happen — per request in a fastify
 * onResponse hook, per write and per transaction through the writer's observer — and read lazily
 * from the modules' own counters when scraped (collect callbacks, no timers). The same figures are
 * stored every SELF_METRICS_PERSIST_SECONDS as points of source `timescope` (job
 * self-metrics-persist), which is where the monitoring API's history comes from.
 */
@Injectable()
export class SelfMetrics implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown, OnModuleDestroy {
  private readonly logger = new Logger('self-metrics');
  readonly registry = new Registry();
  /** The `instance` tag of the stored self-metrics: this host and port. */
  readonly instance: string;

  /** Counted here since start (jobs, webhooks and stream messages are read from their modules). */
  private readonly totals: Figures = emptyFigures();
  /** The figures when last stored, and when. */
  private stored: Figures = emptyFigures();
  private storedAt = Date.now();
  private intervalMin = Infinity;
  private intervalMax = -Infinity;
  private persisting?: Promise<Record<string, unknown>>;
  private timer?: NodeJS.Timeout;
  private unobserve?: () => void;

  /** Requests and their latency over the last minute; server errors over the last hour. */
  readonly lastMinute = new WindowStats(60);
  readonly serverErrorsLastHour = new WindowStats(3600);
  lastServerErrorAt: number | null = null;
  readonly pools: Array<{ label: string; pool: pg.Pool; created: number; closed: number }> = [];

  private readonly httpDuration: Histogram<'method' | 'route' | 'status_class'>;
  private readonly httpErrors: Counter<'method' | 'route' | 'status' | 'code'>;
  private readonly httpRequestBytes: Counter;
  private readonly httpResponseBytes: Counter;
  private readonly queryDuration: Histogram<'route' | 'status_class'>;
  private readonly accepted: Counter<'protocol'>;
  private readonly committed: Counter<'protocol'>;
  private readonly rejected: Counter<'protocol' | 'reason'>;
  private readonly skipped: Counter<'protocol' | 'reason'>;
  private readonly txDuration: Histogram<'outcome'>;
  private readonly txPoints: Histogram;
  private readonly children = new Map<string, { observe(v: number): void } | { inc(v?: number): void }>();

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly config: AppConfig,
    private readonly database: Database,
    private readonly writer: PointWriter,
    private readonly resolver: SeriesResolver,
    private readonly hub: StreamHub,
    private readonly jobs: JobsService,
    private readonly webhooks: WebhookService,
    private readonly door: FrontDoor,
  ) {
    this.instance = `${config.collector.hostname ?? hostname()}:${config.port}`;
    // The process metrics count from their registration (prom-client's CPU total and GC observer):
    // registered when the app is built, not at the first scrape, so they cover the service's life.
    processRegistry();
    const registers = [this.registry];
    const counter = <T extends string>(
      name: string,
      help: string,
      labelNames: T[] = [],
      fill?: (c: Counter<T>) => void,
    ) =>
      new Counter<T>({
        name,
        help,
        labelNames,
        registers,
        ...(fill
          ? {
              collect(this: Counter<T>) {
                this.reset();
                fill(this);
              },
            }
          : {}),
      });
    const gauge = <T extends string>(name: string, help: string, labelNames: T[], fill: (g: Gauge<T>) => void) =>
      new Gauge<T>({
        name,
        help,
        labelNames,
        registers,
        collect(this: Gauge<T>) {
          this.reset();
          fill(this);
        },
      });

    // HTTP: the route pattern, never the raw URL (bounded label values).
    this.httpDuration = new Histogram({
      name: 'timescope_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern and status class, timed as the response leaves (live streams excluded once open)',
      labelNames: ['method', 'route', 'status_class'],
      buckets: [...LATENCY_BUCKETS],
      registers,
    });
    this.httpErrors = counter(
      'timescope_http_errors_total',
      'HTTP answers with status 400 or above, by method, route pattern, status and error code',
      ['method', 'route', 'status', 'code'],
    );
    this.httpRequestBytes = counter(
      'timescope_http_request_bytes_total',
      'Request body bytes received (as declared by Content-Length)',
    );
    this.httpResponseBytes = counter(
      'timescope_http_response_bytes_total',
      'Response body bytes sent (where Content-Length is known: streamed exports and live streams are not counted)',
    );
    this.queryDuration = new Histogram({
      name: 'timescope_query_duration_seconds',
      help: 'Requests of the query API (everything under /api/v1/metrics/ but ingest) by route pattern and status class',
      labelNames: ['route', 'status_class'],
      buckets: QUERY_BUCKETS,
      registers,
    });

    // Ingest and the writer.
    this.accepted = counter(
      'timescope_ingest_points_accepted_total',
      'Points accepted by the writer (queued for a transaction), by protocol or producer',
      ['protocol'],
    );
    this.committed = counter(
      'timescope_ingest_points_committed_total',
      'Points committed to the database, by protocol or producer',
      ['protocol'],
    );
    this.rejected = counter(
      'timescope_ingest_points_rejected_total',
      'Points refused by the writer (queue full, too large, series limit, shutting down) or whose transaction failed',
      ['protocol', 'reason'],
    );
    this.skipped = counter(
      'timescope_ingest_points_skipped_total',
      'Points a protocol left out of a stored request: stale markers, NaN/Inf values, native or exponential histograms, OTLP points reported in partial_success',
      ['protocol', 'reason'],
    );
    this.txDuration = new Histogram({
      name: 'timescope_writer_transaction_duration_seconds',
      help: 'Write transactions of the point writer (one COPY or INSERT of a group of requests), by outcome',
      labelNames: ['outcome'],
      buckets: TRANSACTION_BUCKETS,
      registers,
    });
    this.txPoints = new Histogram({
      name: 'timescope_writer_transaction_points',
      help: 'Points per write transaction (group commit size)',
      buckets: TRANSACTION_POINTS_BUCKETS,
      registers,
    });
    gauge('timescope_ingest_queue_points', 'Points accepted and not yet committed or refused', [], (g) =>
      g.set(this.writer.pendingPoints),
    );
    gauge('timescope_ingest_queue_capacity_points', 'INGEST_QUEUE_MAX_POINTS: past it, ingest answers 503', [], (g) =>
      g.set(this.writer.capacity),
    );
    gauge(
      'timescope_ingest_oldest_pending_seconds',
      'How long the oldest write still waiting for its commit has waited (0 when none)',
      [],
      (g) => g.set(this.writer.oldestPendingMs() / 1000),
    );

    // Live streams.
    gauge(
      'timescope_stream_connections',
      'Open live-stream connections by kind (ws: WebSocket /ws/metrics, sse: /api/v1/metrics/stream)',
      ['kind'],
      (g) => {
        const s = this.hub.summary();
        g.set({ kind: 'ws' }, s.websocket_connections);
        g.set({ kind: 'sse' }, s.sse_connections);
      },
    );
    gauge('timescope_stream_subscriptions', 'Subscriptions of the open live-stream connections', [], (g) =>
      g.set(this.hub.summary().subscriptions),
    );
    gauge(
      'timescope_stream_queued_bytes',
      'Bytes queued for live-stream clients that read slower than they are sent to',
      [],
      (g) => g.set(this.hub.summary().queued_bytes),
    );
    counter('timescope_stream_connections_opened_total', 'Live-stream connections opened, by kind', ['kind'], (c) => {
      c.inc({ kind: 'ws' }, this.hub.sessions.opened.ws);
      c.inc({ kind: 'sse' }, this.hub.sessions.opened.sse);
    });
    counter(
      'timescope_stream_connections_refused_total',
      'Live-stream connections refused at STREAM_MAX_CONNECTIONS',
      [],
      (c) => c.inc(this.hub.stats.refused),
    );
    counter(
      'timescope_stream_clients_cut_off_total',
      'Live-stream clients disconnected for reading too slowly',
      [],
      (c) => c.inc(this.hub.stats.cutOff),
    );
    counter('timescope_stream_messages_total', 'Messages (points) sent to live-stream clients', [], (c) =>
      c.inc(this.hub.stats.delivered),
    );

    // Jobs.
    counter(
      'timescope_job_runs_total',
      'Job runs on this instance by job and outcome (ok, failed, skipped)',
      ['job', 'outcome'],
      (c) => {
        for (const j of this.jobs.stats())
          for (const [outcome, n] of Object.entries(j.outcomes)) c.inc({ job: j.name, outcome }, n);
      },
    );
    gauge(
      'timescope_job_last_duration_seconds',
      'Duration of the last run of each job on this instance',
      ['job'],
      (g) => {
        for (const j of this.jobs.stats()) if (j.last) g.set({ job: j.name }, j.last.duration_ms / 1000);
      },
    );
    gauge(
      'timescope_job_last_run_timestamp_seconds',
      'When the last run of each job on this instance finished (Unix time)',
      ['job'],
      (g) => {
        for (const j of this.jobs.stats()) if (j.last) g.set({ job: j.name }, Date.parse(j.last.finished_at) / 1000);
      },
    );
    gauge('timescope_job_running', 'Whether each job is running now on this instance (1) or not (0)', ['job'], (g) => {
      for (const j of this.jobs.stats()) g.set({ job: j.name }, j.running ? 1 : 0);
    });

    // Webhooks.
    counter(
      'timescope_webhook_deliveries_total',
      'Webhook deliveries by how they ended: delivered, failed (after its last attempt, or a final answer), refused (unsafe URL)',
      ['outcome'],
      (c) => {
        for (const outcome of ['delivered', 'failed', 'refused'] as const)
          c.inc({ outcome }, this.webhooks.stats[outcome]);
      },
    );
    counter('timescope_webhook_retries_total', 'Webhook attempts that failed and were scheduled again', [], (c) =>
      c.inc(this.webhooks.stats.retries),
    );

    // The front door.
    counter('timescope_rate_limited_requests_total', 'Requests answered 429 by rate-limit class', ['class'], (c) => {
      for (const cls of RATE_CLASSES) c.inc({ class: cls }, this.door.refusals.rateLimited[cls] ?? 0);
    });
    counter(
      'timescope_auth_failures_total',
      'Requests refused by the front door: no key, a malformed Authorization header, an unknown/revoked/expired key (401), a key without the scope (403)',
      ['reason'],
      (c) => {
        for (const [reason, n] of Object.entries(this.door.refusals.auth)) c.inc({ reason }, n);
      },
    );

    // Database connection pools.
    const sharedPool = database.readPool === database.writePool;
    for (const [label, pool] of sharedPool
      ? ([['shared', database.readPool]] as const)
      : ([
          ['read', database.readPool],
          ['write', database.writePool],
          ...(database.bucketPool ? ([['buckets', database.bucketPool]] as const) : []),
        ] as const)) {
      const entry = { label, pool, created: pool.totalCount, closed: 0 };
      pool.on('connect', () => entry.created++);
      pool.on('remove', () => entry.closed++);
      this.pools.push(entry);
    }
    gauge(
      'timescope_db_pool_connections',
      'Connections of each pool (read: API queries and jobs; buckets: prepared bucket reads of the query API; write: the point writer; shared on PGlite), active or idle',
      ['pool', 'state'],
      (g) => {
        for (const p of this.pools) {
          g.set({ pool: p.label, state: 'active' }, p.pool.totalCount - p.pool.idleCount);
          g.set({ pool: p.label, state: 'idle' }, p.pool.idleCount);
        }
      },
    );
    gauge('timescope_db_pool_waiting_requests', 'Callers waiting for a connection of each pool', ['pool'], (g) => {
      for (const p of this.pools) g.set({ pool: p.label }, p.pool.waitingCount);
    });
    gauge('timescope_db_pool_max_connections', 'Size limit of each pool', ['pool'], (g) => {
      for (const p of this.pools) g.set({ pool: p.label }, p.pool.options.max ?? 10);
    });
    counter('timescope_db_pool_connections_created_total', 'Connections opened by each pool', ['pool'], (c) => {
      for (const p of this.pools) c.inc({ pool: p.label }, p.created);
    });
    counter(
      'timescope_db_pool_connections_closed_total',
      'Connections closed by each pool (idle timeout, errors)',
      ['pool'],
      (c) => {
        for (const p of this.pools) c.inc({ pool: p.label }, p.closed);
      },
    );

    // The series id cache of the writer.
    counter('timescope_series_cache_hits_total', "Series id lookups served by the writer's cache", [], (c) =>
      c.inc(this.resolver.cache.hits),
    );
    counter('timescope_series_cache_misses_total', 'Series id lookups that went to the database', [], (c) =>
      c.inc(this.resolver.cache.misses),
    );
    counter('timescope_series_cache_evictions_total', 'Series ids dropped from the cache to make room', [], (c) =>
      c.inc(this.resolver.cache.evictions),
    );
    gauge('timescope_series_cache_entries', 'Series ids held in the cache', [], (g) => g.set(this.resolver.cache.size));
    gauge('timescope_series_cache_max_entries', 'SERIES_CACHE_SIZE', [], (g) => g.set(this.resolver.cache.capacity));
    gauge('timescope_series_stored', 'Series known to the database (MAX_SERIES bounds it)', [], (g) =>
      g.set(this.resolver.seriesCount),
    );

    gauge(
      'timescope_build_info',
      'Always 1: the version, storage flavour and Node.js version of this instance',
      ['version', 'flavour', 'node_version'],
      (g) => g.set({ version: VERSION, flavour: this.database.info.flavour, node_version: process.version }, 1),
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition: the process's default metrics, then Timescope's. */
  async exposition(): Promise<string> {
    return Registry.merge([processRegistry(), this.registry]).metrics();
  }

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', (request, reply, done) => {
      this.onResponse(request, reply);
      done();
    });
    this.unobserve = this.writer.observe({
      accepted: (n, origin) => this.inc('a', origin, this.accepted, { protocol: origin }, n),
      committed: (n, origin) => {
        this.inc('c', origin, this.committed, { protocol: origin }, n);
        if (origin !== SELF_ORIGIN) this.totals.ingestPoints += n;
      },
      rejected: (n, origin, reason) =>
        this.inc('r', `${origin}\u0000${reason}`, this.rejected, { protocol: origin, reason }, n),
      skipped: (n, origin, reason) =>
        this.inc('s', `${origin}\u0000${reason}`, this.skipped, { protocol: origin, reason }, n),
      transaction: (seconds, points, ok) => {
        this.txDuration.observe({ outcome: ok ? 'committed' : 'failed' }, seconds);
        this.txPoints.observe(points);
      },
    });
    this.jobs.register({
      name: PERSIST_JOB,
      description: `Stores this instance's own figures (requests, latency, errors, ingest, jobs, webhooks) as points of source ${SELF_SOURCE}, instance ${this.instance}`,
      every: () => (this.config.selfMetrics.persistSeconds || 60) * 1000,
      perInstance: true,
      run: () => this.persist(),
    });
  }

  onApplicationBootstrap(): void {
    const seconds = this.config.selfMetrics.persistSeconds;
    // Paced here, like the collector's persist; with JOBS_ENABLED=false it runs only when triggered.
    if (seconds > 0 && this.config.jobsEnabled) {
      this.timer = setInterval(() => void this.jobs.runNow(PERSIST_JOB).catch(() => undefined), seconds * 1000);
      this.timer.unref();
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    // Best effort: the last interval, if the writer still takes it.
    await this.persist().catch((err: Error) => this.logger.debug(`last self-metrics not stored: ${err.message}`));
  }

  onModuleDestroy(): void {
    this.unobserve?.();
  }

  /** Everything counted since start, jobs, webhooks and stream messages included. */
  snapshot(): Figures {
    const f = cloneFigures(this.totals);
    for (const j of this.jobs.stats())
      for (const [outcome, n] of Object.entries(j.outcomes)) if (n > 0) f.jobRuns.set(jobKey(j.name, outcome), n);
    const w = this.webhooks.stats;
    for (const [outcome, n] of [
      ['delivered', w.delivered],
      ['failed', w.failed],
      ['refused', w.refused],
      ['retrying', w.retries],
    ] as const)
      if (n > 0) f.webhooks.set(outcome, n);
    f.streamMessages = this.hub.stats.delivered;
    return f;
  }

  /** What has not been stored yet: the interval since the last persist. */
  pending(now = Date.now()): Sample {
    return {
      ...delta(this.snapshot(), this.stored),
      seconds: Math.max(0, now - this.storedAt) / 1000,
      min: this.intervalMin,
      max: this.intervalMax,
    };
  }

  /** Stores the interval since the last persist as points (the self-metrics-persist job); kept for the next try when the write fails. */
  persist(): Promise<Record<string, unknown>> {
    if (!this.persisting) {
      this.persisting = this.persistNow().finally(() => (this.persisting = undefined));
    }
    return this.persisting;
  }

  private async persistNow(): Promise<Record<string, unknown>> {
    const now = Date.now();
    const snap = this.snapshot();
    const sample: Sample = {
      ...delta(snap, this.stored),
      seconds: Math.max(0, now - this.storedAt) / 1000,
      min: this.intervalMin,
      max: this.intervalMax,
    };
    this.intervalMin = Infinity;
    this.intervalMax = -Infinity;
    const points = samplePoints(sample, this.instance);
    const b = new PointBatchBuilder(points.length);
    for (const p of points) b.push(b.addSeries(p.metric, SELF_SOURCE, p.tags, p.unit), now, p.value);
    try {
      await this.writer.write(b.build(), SELF_ORIGIN);
    } catch (err) {
      // Not lost: the next persist covers this interval too.
      this.intervalMin = Math.min(this.intervalMin, sample.min);
      this.intervalMax = Math.max(this.intervalMax, sample.max);
      throw err;
    }
    this.stored = snap;
    this.storedAt = now;
    return {
      points: points.length,
      interval_seconds: Math.round(sample.seconds * 1000) / 1000,
      requests: totalRequests(sample),
      instance: this.instance,
    };
  }

  /** Since start: the counted figures (requests, latency, errors, ingest). */
  get since(): Figures {
    return this.totals;
  }

  /** Quantiles, sum and count of the query histogram since start. */
  async queryFigures(): Promise<{ count: number; sum: number; over1s: number }> {
    const m = await this.queryDuration.get();
    let count = 0,
      sum = 0,
      within1s = 0;
    for (const v of m.values as Array<{
      value: number;
      metricName?: string;
      labels: Record<string, string | number>;
    }>) {
      if (v.metricName === 'timescope_query_duration_seconds_count') count += v.value;
      else if (v.metricName === 'timescope_query_duration_seconds_sum') sum += v.value;
      else if (v.metricName === 'timescope_query_duration_seconds_bucket' && v.labels.le === 1) within1s += v.value;
    }
    return { count, sum, over1s: count - within1s };
  }

  private inc(kind: string, key: string, counter: Counter<string>, labels: Labels, n: number): void {
    const k = `${kind}\u0000${key}`;
    let child = this.children.get(k) as { inc(v?: number): void } | undefined;
    if (!child) this.children.set(k, (child = counter.labels(labels)));
    child.inc(n);
  }

  private observe(kind: string, key: string, histogram: Histogram<string>, labels: Labels, v: number): void {
    const k = `${kind}\u0000${key}`;
    let child = this.children.get(k) as { observe(v: number): void } | undefined;
    if (!child) this.children.set(k, (child = histogram.labels(labels)));
    child.observe(v);
  }

  private onResponse(request: FastifyRequest, reply: FastifyReply): void {
    const status = reply.statusCode;
    const access = request.routeOptions?.config as Partial<RouteAccess> | undefined;
    // A live stream that was let in is a session, not a request: the stream metrics count it.
    if (access?.rate === 'stream' && status < 400) return;
    const route = request.routeOptions?.url ?? 'unmatched';
    const method = request.method;
    const seconds = reply.elapsedTime / 1000;
    const cls = statusClass(status);
    this.observe('h', `${method} ${route} ${cls}`, this.httpDuration, { method, route, status_class: cls }, seconds);
    if (isQueryRoute(route))
      this.observe('q', `${route} ${cls}`, this.queryDuration, { route, status_class: cls }, seconds);
    const t = this.totals;
    t.requests[cls]++;
    t.buckets[bucketIndex(seconds)]++;
    t.durationSum += seconds;
    if (seconds < this.intervalMin) this.intervalMin = seconds;
    if (seconds > this.intervalMax) this.intervalMax = seconds;
    const inBytes = Number(request.headers['content-length']);
    if (inBytes > 0) {
      t.requestBytes += inBytes;
      this.httpRequestBytes.inc(inBytes);
    }
    const outBytes = Number(reply.getHeader('content-length'));
    if (outBytes > 0) {
      t.responseBytes += outBytes;
      this.httpResponseBytes.inc(outBytes);
    }
    if (status >= 400) {
      const code = errorCodeOf(request, status);
      const key = errorKey(method, route, status, code);
      t.errors.set(key, (t.errors.get(key) ?? 0) + 1);
      this.inc('e', key, this.httpErrors, { method, route, status: String(status), code }, 1);
      if (status >= 500) {
        this.serverErrorsLastHour.add(1);
        this.lastServerErrorAt = Date.now();
      }
    }
    this.lastMinute.add(seconds);
  }
}
