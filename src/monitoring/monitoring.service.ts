import { Injectable } from '@nestjs/common';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { arch, cpus, platform } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { invalidQuery } from '../common/errors.js';
import { DAY, floorTo, formatDuration, HOUR, MINUTE, parseDuration, toIso } from '../common/time.js';
import { VERSION } from '../common/version.js';
import { AppConfig, isLoopbackHost } from '../config/config.js';
import { Database } from '../database/database.js';
import { rollupRetentionDays } from '../retention/retention-plan.js';
import { PointWriter } from '../storage/point-writer.js';
import { SeriesResolver } from '../storage/series-resolver.js';
import { StreamHub } from '../streaming/stream-hub.js';
import { ComponentHealth, HealthService } from '../system/health.service.js';
import {
  addSample,
  emptySample,
  parseErrorKey,
  performanceOf,
  Sample,
  SELF_SERIES,
  StoredReader,
  totalRequests,
} from './figures.js';
import { grafanaDashboard } from './grafana-dashboard.js';
import { processRegistry, SelfMetrics } from './self-metrics.service.js';
import { SelfMetricsRepository, SelfSeries } from './self-metrics.repository.js';

const GIB = 1024 ** 3;
const SLOW_QUERY_MS = 1_000;
/** The reference's periods, and any other `N(m|h|d|w)` from a minute to 400 days. */
const MAX_PERIOD_MS = 400 * DAY;
const RESOLUTIONS: Record<string, number> = { minute: MINUTE, hour: HOUR, day: DAY };

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const gib = (bytes: number) => round(bytes / GIB, 3);

/** `period`: 1h, 24h, 7d, 30d (the reference's), or any N(m|h|d|w) from 1m to 400d. */
export function parsePeriod(v: unknown, def = '24h'): { label: string; ms: number } {
  const text = v === undefined || v === '' ? def : String(v);
  const ms = parseDuration(text);
  if (!Number.isFinite(ms) || ms < MINUTE || ms > MAX_PERIOD_MS) {
    throw invalidQuery('period', 'period must be a duration such as 1h, 24h, 7d or 30d (from 1m to 400d)', {
      period: text,
    });
  }
  return { label: text, ms };
}

/** `resolution`: minute, hour or day; by default the one that gives one to a few hundred buckets. */
export function parseResolution(v: unknown, periodMs: number, maxBuckets: number): { label: string; ms: number } {
  const label =
    v === undefined || v === '' ? (periodMs <= 6 * HOUR ? 'minute' : periodMs <= 7 * DAY ? 'hour' : 'day') : String(v);
  const ms = RESOLUTIONS[label];
  if (!ms) throw invalidQuery('resolution', 'resolution must be one of minute, hour, day', { resolution: label });
  const buckets = Math.ceil(periodMs / ms) + 1;
  if (buckets > maxBuckets) {
    throw invalidQuery(
      'resolution',
      `${formatDuration(periodMs)} by ${label} is ${buckets} buckets, more than ${maxBuckets} (QUERY_MAX_BUCKETS): use a coarser resolution`,
      { buckets, max: maxBuckets },
    );
  }
  return { label, ms };
}

let packageVersions: Record<string, string | null> | undefined;
/** Versions of the main libraries, read once from their package.json files. */
function libraryVersions(): Record<string, string | null> {
  if (!packageVersions) {
    packageVersions = {};
    for (const name of ['@nestjs/core', '@nestjs/platform-fastify', 'fastify', 'pg', 'kysely', 'prom-client', 'zod']) {
      try {
        packageVersions[name] =
          JSON.parse(readFileSync(new URL(`../../../node_modules/${name}/package.json`, import.meta.url), 'utf8'))
            .version ?? null;
      } catch {
        packageVersions[name] = null;
      }
    }
  }
  return packageVersions;
}

/** A connection string without its password or query parameters (which may hold one): scheme://user@host:port/database. */
export function redactedUrl(url: string | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return '(not a URL)';
  }
}

/**
 * The rest of monitoring-api.md under /api/v1/monitoring: detailed health, application and
 * performance metrics, the Grafana dashboard, database and cache resources, the error summary and
 * debug information. Figures of this instance come from SelfMetrics; history (performance, errors
 * over a period) from the self-metrics stored as points, plus the interval not stored yet.
 */
@Injectable()
export class MonitoringService {
  private readonly startedAt = Date.now();

  constructor(
    private readonly self: SelfMetrics,
    private readonly repo: SelfMetricsRepository,
    private readonly health: HealthService,
    private readonly database: Database,
    private readonly resolver: SeriesResolver,
    private readonly writer: PointWriter,
    private readonly hub: StreamHub,
    private readonly config: AppConfig,
  ) {}

  /** GET /health/detailed: the reference's database, cache, storage (and llm: none) components, then Timescope's own. */
  async healthDetailed() {
    const { status, components } = await this.health.check();
    const byName = new Map(components);
    const db = byName.get('database') ?? { status: 'unknown', level: 'degraded' as const };
    const pool = this.poolTotals();
    const cache = this.seriesCache();
    const others = components
      .filter(([name]) => name !== 'database')
      .map(([name, { status: state, level, ...rest }]: [string, ComponentHealth]) => [
        name,
        { status: level, state, ...rest },
      ]);
    return {
      status,
      components: {
        database: {
          status: db.level,
          state: db.status,
          latency_ms: typeof db.response_time_ms === 'number' ? db.response_time_ms : null,
          connection_pool: { active: pool.active, idle: pool.idle, max: pool.max, waiting: pool.waiting },
          flavour: this.database.info.flavour,
          engine: this.database.info.pglite ? 'pglite' : 'postgresql',
          server_version: this.database.info.serverVersion.split(' on ')[0],
          ...(db.error ? { error: db.error } : {}),
        },
        cache: {
          // The series id cache: an in-process map, so no network latency to measure and no separate memory figure.
          status: 'healthy',
          latency_ms: null,
          memory_used_mb: null,
          hit_rate: cache.hit_rate,
          keys_count: cache.keys_count,
          capacity: cache.capacity,
        },
        storage: await this.storage(db),
        llm: null,
        ...Object.fromEntries(others),
      },
      timestamp: toIso(Date.now()),
    };
  }

  /** The database's disk: size from the server; the filesystem's free space when the data directory is on this machine. */
  private async storage(db: ComponentHealth) {
    const size = typeof db.database_size_bytes === 'number' ? db.database_size_bytes : null;
    let available: number | null = null,
      total: number | null = null;
    const dir = this.isLocalDatabase() ? await this.repo.dataDirectory().catch(() => null) : null;
    if (dir && existsSync(dir)) {
      try {
        const fs = await statfs(dir);
        available = fs.bavail * fs.bsize;
        total = fs.blocks * fs.bsize;
      } catch {
        /* not ours to read */
      }
    }
    return {
      status: db.level,
      latency_ms: typeof db.size_query_ms === 'number' ? db.size_query_ms : null,
      used_gb: size === null ? null : gib(size),
      available_gb: available === null ? null : gib(available),
      filesystem_total_gb: total === null ? null : gib(total),
      used_bytes: size,
      available_bytes: available,
    };
  }

  private isLocalDatabase(): boolean {
    if (this.database.info.pglite || !this.config.databaseUrl) return false;
    try {
      const host = new URL(this.config.databaseUrl).hostname;
      return host === '' || isLoopbackHost(host);
    } catch {
      return false;
    }
  }

  /** GET /metrics/application: this instance since it started. */
  async application() {
    const f = this.self.since;
    const requests = totalRequests(f);
    const minute = this.self.lastMinute.totals();
    const s = this.hub.sessions;
    const today = new Date().toISOString().slice(0, 10);
    const isToday = s.day === today;
    const summary = this.hub.summary();
    const jobs = this.self.snapshot().jobRuns;
    let jobRuns = 0,
      jobFailures = 0;
    for (const [key, n] of jobs) {
      jobRuns += n;
      if (key.endsWith('\u0000failed')) jobFailures += n;
    }
    return {
      application: {
        uptime_seconds: Math.floor((Date.now() - this.startedAt) / 1000),
        requests: {
          total: requests,
          rate_per_second: round(minute.count / 60, 3),
          average_latency_ms: requests > 0 ? round((f.durationSum / requests) * 1000) : null,
          last_minute: minute.count,
          average_latency_ms_last_minute: minute.count > 0 ? round((minute.sum / minute.count) * 1000) : null,
        },
        // Sessions are live-stream connections (WebSocket and SSE).
        sessions: {
          active: summary.connections,
          total_today: isToday ? s.openedToday : 0,
          average_duration_minutes:
            isToday && s.closedToday > 0 ? round(s.closedTodayMs / s.closedToday / MINUTE) : null,
          websocket: summary.websocket_connections,
          sse: summary.sse_connections,
        },
        // Timescope has no conversations (the reference's chat sessions); see the README.
        conversations: null,
        errors: {
          total: f.requests['5xx'],
          rate_per_hour: this.self.serverErrorsLastHour.totals().count,
          last_error: this.self.lastServerErrorAt === null ? null : toIso(this.self.lastServerErrorAt),
          client_errors: f.requests['4xx'],
        },
        ingestion: {
          points_committed: f.ingestPoints,
          points_per_second: round(this.writer.meter.rate(), 2),
          queue_points: this.writer.pendingPoints,
        },
        jobs: { runs: jobRuns, failures: jobFailures },
        streams: { messages_sent: this.hub.stats.delivered, clients_cut_off: this.hub.stats.cutOff },
      },
      timestamp: toIso(Date.now()),
    };
  }

  /** GET /metrics/performance?period=&resolution=: the stored self-metrics over the period, per bucket and in all. */
  async performance(q: { period?: unknown; resolution?: unknown }) {
    const period = parsePeriod(q.period);
    const resolution = parseResolution(q.resolution, period.ms, this.config.query.maxBuckets);
    const now = Date.now();
    const from = now - period.ms;
    const { buckets, instances } = await this.read(from, now, resolution.ms);
    const total = emptySample();
    for (const b of buckets.values()) addSample(total, b);
    const series = [...buckets]
      .sort(([a], [b]) => a - b)
      .map(([t, sample]) => ({ timestamp: toIso(t), ...performanceOf(sample) }));
    const { requests, covered_seconds, ...performance } = performanceOf(total);
    return {
      performance,
      period: period.label,
      resolution: resolution.label,
      from: toIso(from),
      to: toIso(now),
      requests,
      covered_seconds,
      series,
      source: this.source(instances),
    };
  }

  /** GET /errors/summary?period=: HTTP errors (4xx, 5xx) by code, status and route, failed job runs and webhook deliveries. */
  async errorsSummary(q: { period?: unknown }) {
    const period = parsePeriod(q.period);
    const now = Date.now();
    const from = now - period.ms;
    const { buckets, instances } = await this.read(from, now, period.ms >= 2 * DAY ? DAY : HOUR, [
      SELF_SERIES.errors,
      SELF_SERIES.requests,
      SELF_SERIES.jobRuns,
      SELF_SERIES.webhooks,
      SELF_SERIES.interval,
    ]);
    const s = emptySample();
    for (const b of buckets.values()) addSample(s, b);
    const byType: Record<string, number> = {},
      byStatus: Record<string, number> = {},
      byJob: Record<string, number> = {};
    const byRoute: Array<{ method: string; route: string; status: number; code: string; count: number }> = [];
    let http = 0;
    for (const [key, n] of s.errors) {
      const e = parseErrorKey(key);
      http += n;
      byType[e.code] = (byType[e.code] ?? 0) + n;
      byStatus[String(e.status)] = (byStatus[String(e.status)] ?? 0) + n;
      byRoute.push({ ...e, count: n });
    }
    byRoute.sort((a, b) => b.count - a.count || a.route.localeCompare(b.route) || a.status - b.status);
    let jobs = 0;
    for (const [key, n] of s.jobRuns) {
      const [job, outcome] = key.split('\u0000');
      if (outcome !== 'failed') continue;
      jobs += n;
      byJob[job] = (byJob[job] ?? 0) + n;
    }
    const webhookFailed = s.webhooks.get('failed') ?? 0,
      webhookRefused = s.webhooks.get('refused') ?? 0;
    if (jobs > 0) byType.JOB_FAILED = jobs;
    if (webhookFailed > 0) byType.WEBHOOK_FAILED = webhookFailed;
    if (webhookRefused > 0) byType.WEBHOOK_REFUSED = webhookRefused;
    const requests = totalRequests(s);
    return {
      summary: {
        total_errors: http + jobs + webhookFailed + webhookRefused,
        errors_by_type: byType,
        errors_by_service: { http, jobs, webhooks: webhookFailed + webhookRefused },
        errors_by_status: byStatus,
        errors_by_route: byRoute,
        errors_by_job: byJob,
        client_errors: s.requests['4xx'],
        server_errors: s.requests['5xx'],
        requests,
        error_rate: requests > 0 ? round(http / requests, 6) : null,
        period: period.label,
        from: toIso(from),
        to: toIso(now),
      },
      source: this.source(instances),
    };
  }

  /**
   * Stored self-metrics over [from, now] in buckets of `stepMs`, with this instance's interval not
   * stored yet added to the current bucket.
   */
  private async read(
    from: number,
    now: number,
    stepMs: number,
    metrics?: string[],
  ): Promise<{ buckets: Map<number, Sample>; instances: string[] }> {
    const series = await this.repo.series(metrics);
    const byId = new Map<number, SelfSeries>(series.map((s) => [s.id, s]));
    const rows = await this.repo.buckets([...byId.keys()], from, now + 1, stepMs);
    const readers = new Map<number, StoredReader>();
    const instances = new Set<string>();
    for (const r of rows) {
      const s = byId.get(r.id)!;
      let reader = readers.get(r.t);
      if (!reader) readers.set(r.t, (reader = new StoredReader()));
      reader.add(s.metric, s.tags, r.sum, r.min, r.max);
      if (s.tags.instance) instances.add(s.tags.instance);
    }
    const buckets = new Map<number, Sample>([...readers].map(([t, r]) => [t, r.finish()]));
    const current = floorTo(now, stepMs);
    buckets.set(current, addSample(buckets.get(current) ?? emptySample(), this.self.pending(now)));
    instances.add(this.self.instance);
    return { buckets, instances: [...instances].sort() };
  }

  private source(instances: string[]) {
    const pending = this.self.pending();
    return {
      stored_series: 'source timescope, metrics timescope_* (one point per interval and instance)',
      persist_interval_seconds: this.config.selfMetrics.persistSeconds,
      instances,
      unsaved_seconds: round(pending.seconds, 3),
    };
  }

  /** GET /metrics/grafana */
  grafana(q: { datasource_uid?: unknown }) {
    const uid = typeof q.datasource_uid === 'string' && q.datasource_uid !== '' ? q.datasource_uid : undefined;
    if (uid !== undefined && !/^[A-Za-z0-9_-]{1,40}$/.test(uid))
      throw invalidQuery(
        'datasource_uid',
        'datasource_uid must be a Grafana uid (letters, digits, - and _, at most 40)',
      );
    return { dashboard: grafanaDashboard(uid) };
  }

  private poolTotals() {
    let max = 0,
      active = 0,
      idle = 0,
      waiting = 0,
      created = 0,
      closed = 0;
    for (const p of this.self.pools) {
      max += p.pool.options.max ?? 10;
      active += p.pool.totalCount - p.pool.idleCount;
      idle += p.pool.idleCount;
      waiting += p.pool.waitingCount;
      created += p.created;
      closed += p.closed;
    }
    return { max, active, idle, waiting, created, closed };
  }

  /** GET /resources/database: the connection pools and the statements of Timescope's connections. */
  async databaseResources() {
    const t = this.poolTotals();
    const [statements, queries] = await Promise.all([
      this.repo.activeStatements(SLOW_QUERY_MS).catch(() => null),
      this.self.queryFigures(),
    ]);
    return {
      pool: {
        max_connections: t.max,
        active_connections: t.active,
        idle_connections: t.idle,
        waiting_requests: t.waiting,
        total_created: t.created,
        total_closed: t.closed,
      },
      pools: Object.fromEntries(
        this.self.pools.map((p) => [
          p.label,
          {
            max_connections: p.pool.options.max ?? 10,
            active_connections: p.pool.totalCount - p.pool.idleCount,
            idle_connections: p.pool.idleCount,
            waiting_requests: p.pool.waitingCount,
            total_created: p.created,
            total_closed: p.closed,
          },
        ]),
      ),
      queries: {
        // Statements running now on Timescope's connections (null on PGlite: one in-process session).
        active: statements?.active ?? null,
        running_over_1s: statements?.slow ?? null,
        // Requests of the query API since start.
        slow_queries: queries.over1s,
        slow_threshold_ms: SLOW_QUERY_MS,
        average_duration_ms: queries.count > 0 ? round((queries.sum / queries.count) * 1000) : null,
        total: queries.count,
      },
    };
  }

  private seriesCache() {
    const c = this.resolver.cache;
    const lookups = c.hits + c.misses;
    return {
      hits: c.hits,
      misses: c.misses,
      hit_rate: lookups > 0 ? round(c.hits / lookups, 4) : null,
      evictions: c.evictions,
      keys_count: c.size,
      capacity: c.capacity,
    };
  }

  /** GET /resources/cache: the writer's series id cache (the only cache Timescope keeps). */
  cacheResources() {
    const c = this.seriesCache();
    return {
      cache: {
        name: 'series',
        hits: c.hits,
        misses: c.misses,
        hit_rate: c.hit_rate,
        evictions: c.evictions,
        // An in-process map inside the V8 heap: its size is not measured apart (see process memory in /debug/info).
        memory_used_mb: null,
        memory_limit_mb: null,
        keys_count: c.keys_count,
        keys_limit: c.capacity,
        series_stored: this.resolver.seriesCount,
      },
    };
  }

  /** GET /debug/info (admin): versions, process figures and a configuration summary that holds no secret. */
  async debugInfo() {
    const mem = process.memoryUsage();
    const heap = getHeapStatistics();
    const resources = typeof process.getActiveResourcesInfo === 'function' ? process.getActiveResourcesInfo() : [];
    const byType: Record<string, number> = {};
    for (const r of resources) byType[r] = (byType[r] ?? 0) + 1;
    const c = this.config;
    return {
      debug: {
        // Node.js has no goroutines and V8 does not count allocations: see active_resources and memory.
        goroutines: null,
        memory_allocations: null,
        gc_runs: await this.gcRuns(),
        open_files: this.openFiles(),
        environment: c.environment ?? null,
        config: {
          debug_mode: c.log.level === 'debug' || c.log.level === 'verbose',
          log_level: c.log.level,
          log_format: c.log.format,
          host: c.host,
          port: c.port,
          auth: { mode: c.auth.mode, keys_required: c.auth.enabled, key_cache_seconds: c.auth.keyCacheMs / 1000 },
          rate_limits: { enabled: c.rateLimits.enabled, per_minute: c.rateLimits.perMinute },
          database: {
            url: redactedUrl(c.databaseUrl),
            pool_max: c.db.poolMax,
            write_connections: c.db.writeConnections,
            statement_timeout_ms: c.db.statementTimeoutMs,
            timescaledb_setting: c.timescaledb,
          },
          jobs_enabled: c.jobsEnabled,
          self_metrics_persist_seconds: c.selfMetrics.persistSeconds,
          ingest: {
            max_body_bytes: c.ingest.maxBodyBytes,
            max_points_per_request: c.ingest.maxPointsPerRequest,
            queue_max_points: c.ingest.queueMaxPoints,
            flush_max_points: c.ingest.flushMaxPoints,
            write_stall_seconds: c.ingest.stallMs / 1000,
          },
          retention_days: c.retentionDays,
          rollup_retention_days: rollupRetentionDays(c.retentionDays, c.retention.rollupDays),
          series: { cache_size: c.series.cacheSize, max_series: c.series.maxSeries },
          query: {
            max_buckets: c.query.maxBuckets,
            max_series: c.query.maxSeries,
            statement_timeout_ms: c.db.statementTimeoutMs,
          },
          streams: { max_connections: c.streams.maxConnections, max_subscriptions: c.streams.maxSubscriptions },
          webhooks: {
            timeout_ms: c.webhooks.timeoutMs,
            max_attempts: c.webhooks.maxAttempts,
            allow_private: c.webhooks.allowPrivate,
          },
          collector: { enabled: c.collector.enabled, hostname: c.collector.hostname ?? null },
          data_dir: c.dataDir,
        },
        versions: {
          timescope: VERSION,
          node: process.version,
          v8: process.versions.v8,
          postgresql: this.database.info.serverVersion.split(' on ')[0],
          timescaledb: await this.repo.timescaleVersion().catch(() => null),
          ...libraryVersions(),
        },
        database: {
          flavour: this.database.info.flavour,
          engine: this.database.info.pglite ? 'pglite' : 'postgresql',
          write_method: this.database.info.writeMethod,
        },
        process: {
          pid: process.pid,
          uptime_seconds: Math.floor(process.uptime()),
          platform: platform(),
          arch: arch(),
          cpus: cpus().length,
          memory: {
            rss_bytes: mem.rss,
            heap_used_bytes: mem.heapUsed,
            heap_total_bytes: mem.heapTotal,
            external_bytes: mem.external,
            array_buffers_bytes: mem.arrayBuffers,
          },
          heap: {
            size_limit_bytes: heap.heap_size_limit,
            total_available_bytes: heap.total_available_size,
            native_contexts: heap.number_of_native_contexts,
          },
          active_resources: { total: resources.length, by_type: byType },
        },
      },
    };
  }

  /** Garbage collections since the process started (prom-client's GC observer). */
  private async gcRuns(): Promise<number | null> {
    const gc = processRegistry().getSingleMetric('nodejs_gc_duration_seconds');
    if (!gc) return null;
    const m = await gc.get();
    return (m.values as Array<{ value: number; metricName?: string }>)
      .filter((v) => v.metricName === 'nodejs_gc_duration_seconds_count')
      .reduce((n, v) => n + v.value, 0);
  }

  private openFiles(): number | null {
    try {
      return readdirSync('/proc/self/fd').length - 1; // the directory handle itself
    } catch {
      return null;
    }
  }
}
