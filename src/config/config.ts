import { z } from 'zod';
import { rollupRetentionDays } from '../retention/retention-plan.js';

/** Rate-limit classes: every route belongs to one (see src/auth/access.ts). */
export const RATE_CLASSES = [
  'ingest',
  'query',
  'admin',
  'stream',
  'monitoring_metrics',
  'monitoring_logs',
  'monitoring_alerts',
  'docs',
  'auth_failures',
] as const;
export type RateClass = (typeof RATE_CLASSES)[number];

/**
 * The environment, validated once at boot. Nothing else in the code base reads `process.env`.
 * Every variable is documented in the README ("Configuration").
 */
const int = (def: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(def);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const envSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z.string().min(1).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  EMBEDDED_PG_PORT: int(54329, 1, 65535),
  TIMESCALEDB: z.enum(['auto', 'on', 'off']).default('auto'),
  MIGRATE_ON_START: bool(true),
  JOBS_ENABLED: bool(true),

  DB_POOL_MAX: int(8, 1, 200),
  DB_WRITE_CONNECTIONS: int(2, 1, 32),
  DB_STATEMENT_TIMEOUT_MS: int(30_000, 100, 3_600_000),
  DB_PREPARED_READS: int(64, 0, 10_000),
  DB_CONNECT_TIMEOUT_MS: int(5_000, 100, 120_000),

  INGEST_WRITE_METHOD: z.enum(['auto', 'copy', 'unnest']).default('auto'),
  INGEST_MAX_BODY_BYTES: int(10 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  INGEST_MAX_POINTS_PER_REQUEST: int(20_000, 1, 10_000_000),
  INGEST_MAX_TAGS: int(64, 0, 1024),
  INGEST_MAX_NAME_LENGTH: int(200, 1, 4096),
  INGEST_MAX_TAG_KEY_LENGTH: int(128, 1, 4096),
  INGEST_MAX_TAG_VALUE_LENGTH: int(1024, 1, 65_536),
  INGEST_MAX_FUTURE_SECONDS: int(600, 0, 10 * 365 * 86_400),
  INGEST_QUEUE_MAX_POINTS: int(500_000, 1_000, 100_000_000),
  INGEST_FLUSH_MAX_POINTS: int(50_000, 100, 10_000_000),
  WRITE_STALL_SECONDS: int(5, 1, 3_600),

  SERIES_CACHE_SIZE: int(200_000, 100, 100_000_000),
  MAX_SERIES: int(1_000_000, 1, 1_000_000_000),

  METRICS_RETENTION_DAYS: int(7, 0, 100_000),
  ROLLUP_REFRESH_SECONDS: int(30, 1, 86_400),
  ROLLUP_LAG_SECONDS: int(60, 0, 86_400),
  PARTITION_PREMAKE_DAYS: int(3, 1, 365),

  QUERY_MAX_BUCKETS: int(11_000, 10, 10_000_000),
  QUERY_AUTO_BUCKETS: int(1_000, 10, 100_000),
  QUERY_MAX_SERIES: int(10_000, 1, 10_000_000),
  QUERY_MAX_GROUPS: int(1_000, 1, 1_000_000),

  // Outgoing webhooks (alerts, pipelines)
  WEBHOOK_TIMEOUT_MS: int(5_000, 100, 120_000),
  WEBHOOK_MAX_ATTEMPTS: int(6, 1, 50),
  WEBHOOK_RETRY_BASE_MS: int(2_000, 1, 3_600_000),
  WEBHOOK_RETRY_MAX_MS: int(300_000, 1, 86_400_000),
  WEBHOOK_ALLOW_PRIVATE: bool(false),
  WEBHOOK_CONCURRENCY: int(4, 1, 64),

  // Pipelines: catch-up after downtime, and bounds of one run or dry-run
  PIPELINE_MAX_CATCHUP_WINDOWS: int(60, 1, 100_000),
  PIPELINE_MAX_WINDOWS: int(10_000, 1, 1_000_000),
  PIPELINE_MAX_ROWS: int(100_000, 1, 10_000_000),
  PIPELINE_RUNS_RETENTION_DAYS: int(30, 1, 3650),

  // Host and GPU collector, retention, jobs and runtime configuration (issue 3). Everything in this
  // block except COLLECTOR_HOSTNAME and NVIDIA_SMI_PATH can be changed at run time with PUT /api/v1/config.
  COLLECTOR_ENABLED: bool(true),
  METRICS_INTERVAL_LIVE: int(5, 1, 3_600),
  METRICS_INTERVAL_PERSIST: int(30, 1, 86_400),
  COLLECTOR_HOSTNAME: z.string().min(1).max(200).optional(),
  COLLECTOR_BUFFER_MAX_POINTS: int(200_000, 1_000, 100_000_000),
  NVIDIA_SMI_PATH: z.string().min(1).default('nvidia-smi'),
  ROLLUP_RETENTION_DAYS: int(365, 0, 100_000),
  RETENTION_INTERVAL_SECONDS: int(3_600, 1, 86_400),
  PARTITION_PREMAKE_INTERVAL_SECONDS: int(3_600, 1, 86_400),
  COMPRESSION_ENABLED: bool(true),
  COMPRESSION_INTERVAL_SECONDS: int(3_600, 1, 86_400),
  ALERTING_ENABLED: bool(true),
  ALERT_QUEUE_SIZE: int(400_000, 0, 1_000_000_000),
  ALERT_INGESTION_RATE: int(100_000, 0, 1_000_000_000),

  // Analytics (issue 4): summary statistics, anomaly detection, export.
  ANOMALY_MAX_POINTS: int(1_000_000, 100, 100_000_000),
  ANOMALY_MAX_SERIES: int(100, 1, 100_000),
  ANOMALY_WORKER_MIN_POINTS: int(50_000, 0, 100_000_000),
  EXPORT_DIR: z.string().min(1).optional(),
  EXPORT_MAX_CONCURRENT: int(2, 1, 100),
  EXPORT_TIMEOUT_SECONDS: int(3600, 1, 7 * 86_400),
  EXPORT_TTL_HOURS: int(24, 1, 365 * 24),
  EXPORT_STALL_SECONDS: int(30, 1, 86_400),

  // Live streams (WebSocket, SSE), events and logs, service status, alerts (issue 5)
  STREAM_MAX_CONNECTIONS: int(2_000, 1, 1_000_000),
  STREAM_MAX_SUBSCRIPTIONS: int(100, 1, 100_000),
  STREAM_MAX_CONNECTIONS_PER_KEY: int(200, 1, 1_000_000),
  STREAM_BUFFER_BYTES: int(131_072, 1_024, 1024 * 1024 * 1024),
  STREAM_SLOW_CLIENT_SECONDS: int(30, 1, 86_400),
  STREAM_REPLAY_POINTS: int(100_000, 0, 10_000_000),
  STREAM_HEARTBEAT_SECONDS: int(15, 1, 3_600),
  EVENTS_RETENTION_DAYS: int(30, 0, 100_000),
  SERVICE_TTL_SECONDS: int(180, 1, 30 * 86_400),
  ALERTS_EVALUATION_SECONDS: int(5, 1, 86_400),

  // The front door (issue 11): API keys, rate limits. Limits are requests per minute per key (per
  // client address without a key); 0 means unlimited.
  AUTH: z.enum(['auto', 'on', 'off']).default('auto'),
  AUTH_KEY_CACHE_SECONDS: int(10, 0, 3_600),
  RATE_LIMIT_ENABLED: bool(true),
  RATE_LIMIT_INGEST: int(6_000, 0, 100_000_000),
  RATE_LIMIT_QUERY: int(1_200, 0, 100_000_000),
  RATE_LIMIT_ADMIN: int(120, 0, 100_000_000),
  RATE_LIMIT_STREAM: int(60, 0, 100_000_000),
  RATE_LIMIT_MONITORING_METRICS: int(60, 0, 100_000_000),
  RATE_LIMIT_MONITORING_LOGS: int(30, 0, 100_000_000),
  RATE_LIMIT_MONITORING_ALERTS: int(10, 0, 100_000_000),
  RATE_LIMIT_DOCS: int(120, 0, 100_000_000),
  RATE_LIMIT_AUTH_FAILURES: int(30, 0, 100_000_000),
  RATE_LIMIT_MAX_CLIENTS: int(100_000, 100, 100_000_000),
  // The SQL reader (Grafana) and its watchdog (issue 11). `none`: Timescope manages no reader role.
  GRAFANA_READER_ROLE: z
    .string()
    .min(1)
    .max(63)
    .refine((v) => !/[\0]/.test(v), 'must not contain NUL')
    .default('grafana_reader'),
  READER_STATEMENT_TIMEOUT_SECONDS: int(30, 0, 86_400),
  READER_WATCHDOG_INTERVAL_SECONDS: int(5, 1, 3_600),

  // Self-metrics (issue 12): how often this instance stores its own figures as points (0: never).
  SELF_METRICS_PERSIST_SECONDS: int(60, 0, 86_400),
  /** Shown by GET /api/v1/monitoring/debug/info (the Docker image sets production); nothing else depends on it. */
  NODE_ENV: z.string().min(1).max(100).optional(),

  LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log'),
  LOG_FORMAT: z.enum(['text', 'json']).default('text'),
});

export type Env = z.infer<typeof envSchema>;

/** The typed configuration handed to every module (also the Nest injection token). */
export class AppConfig {
  declare readonly port: number;
  declare readonly host: string;
  declare readonly databaseUrl: string | undefined;
  declare readonly dataDir: string;
  declare readonly embeddedPgPort: number;
  declare readonly timescaledb: 'auto' | 'on' | 'off';
  declare readonly migrateOnStart: boolean;
  declare readonly jobsEnabled: boolean;
  declare readonly db: {
    poolMax: number;
    writeConnections: number;
    statementTimeoutMs: number;
    connectTimeoutMs: number;
    /** Shapes of bucket reads kept as named statements with generic plans; 0: no bucket pool. */
    preparedReads: number;
  };
  declare readonly ingest: {
    writeMethod: 'auto' | 'copy' | 'unnest';
    maxBodyBytes: number;
    maxPointsPerRequest: number;
    maxTags: number;
    maxNameLength: number;
    maxTagKeyLength: number;
    maxTagValueLength: number;
    maxFutureMs: number;
    queueMaxPoints: number;
    flushMaxPoints: number;
    /** A write waiting longer than this for its commit turns /health degraded. */
    stallMs: number;
  };
  declare readonly series: { cacheSize: number; maxSeries: number };
  declare readonly retentionDays: number;
  declare readonly rollups: { refreshSeconds: number; lagSeconds: number; partitionPremakeDays: number };
  declare readonly query: { maxBuckets: number; autoBuckets: number; maxSeries: number; maxGroups: number };
  declare readonly webhooks: {
    timeoutMs: number;
    maxAttempts: number;
    retryBaseMs: number;
    retryMaxMs: number;
    allowPrivate: boolean;
    concurrency: number;
  };
  declare readonly pipelines: {
    maxCatchupWindows: number;
    maxWindows: number;
    maxRows: number;
    runsRetentionDays: number;
  };
  // Live streams, events and logs, service status, alerts (issue 5)
  declare readonly streams: {
    maxConnections: number;
    maxSubscriptions: number;
    /** Open streams of one API key (keys off: no limit but STREAM_MAX_CONNECTIONS). */
    maxConnectionsPerKey: number;
    bufferBytes: number;
    slowClientMs: number;
    replayPoints: number;
    heartbeatMs: number;
  };
  declare readonly events: { retentionDays: number };
  declare readonly services: { ttlSeconds: number };
  declare readonly alerts: { evaluationMs: number };
  /** The front door: `enabled` is AUTH resolved (auto: off only on the embedded default bound to loopback). */
  declare readonly auth: { mode: 'auto' | 'on' | 'off'; enabled: boolean; keyCacheMs: number };
  declare readonly rateLimits: { enabled: boolean; perMinute: Record<RateClass, number>; maxClients: number };
  /** The SQL reader role (undefined: none managed), its statement limit (0: not enforced) and the watchdog's interval. */
  declare readonly reader: { role: string | undefined; statementTimeoutSeconds: number; watchdogIntervalMs: number };
  declare readonly log: { level: Env['LOG_LEVEL']; format: Env['LOG_FORMAT'] };
  /** Seconds between two persists of the self-metrics (0: kept in memory only). */
  declare readonly selfMetrics: { persistSeconds: number };
  /** NODE_ENV, for the debug information only. */
  declare readonly environment: string | undefined;
  // Collector, retention, jobs, alerting (issue 3). Tunable fields are updated in place by
  // SettingsService (src/settings) when PUT /api/v1/config changes them, so read them at use time.
  declare readonly collector: {
    enabled: boolean;
    liveSeconds: number;
    persistSeconds: number;
    hostname: string | undefined;
    bufferMaxPoints: number;
    nvidiaSmiPath: string;
  };
  declare readonly retention: { rollupDays: number; intervalSeconds: number };
  declare readonly maintenance: {
    partitionPremakeSeconds: number;
    compressionEnabled: boolean;
    compressionSeconds: number;
  };
  declare readonly alerting: { enabled: boolean; queueSize: number; ingestionRate: number };
  declare readonly analytics: {
    anomalyMaxPoints: number;
    anomalyMaxSeries: number;
    anomalyWorkerMinPoints: number;
    exportDir: string;
    exportMaxConcurrent: number;
    exportTimeoutMs: number;
    exportTtlMs: number;
    /** A streamed download whose client takes no bytes this long is cut off. */
    exportStallMs: number;
  };
}

export class ConfigError extends Error {}

export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  // Empty strings mean "unset", as in most shells' `VAR= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const config = fromEnv(parsed.data);
  // A rule between two variables may raise a default to fit, never a value the operator set.
  const refused = settleConfig(config).filter((a) => a.variable in cleaned);
  if (refused.length > 0)
    throw new ConfigError(`Invalid configuration:\n${refused.map((a) => `  ${a.variable}: ${a.rule}`).join('\n')}`);
  return config;
}

/** A value raised to fit a rule between settings. */
export interface Adjustment {
  /** The setting (PUT /api/v1/config path) and environment variable of the raised value. */
  field: string;
  variable: string;
  from: number;
  to: number;
  rule: string;
}

/**
 * The rules between settings, enforced in place by raising the dependent value (never lowering
 * one: a shorter retention would drop data): the persist interval is at least the live interval;
 * rollups are kept at least as long as raw points, and forever (0) when raw points are. Returns
 * what was raised. The running configuration always satisfies them, so GET /api/v1/config shows
 * the values in force.
 */
export function settleConfig(c: AppConfig): Adjustment[] {
  const out: Adjustment[] = [];
  const live = c.collector.liveSeconds,
    persist = c.collector.persistSeconds;
  if (persist < live) {
    out.push({
      field: 'collector.interval_persist',
      variable: 'METRICS_INTERVAL_PERSIST',
      from: persist,
      to: live,
      rule: `${persist} must be at least METRICS_INTERVAL_LIVE (${live})`,
    });
    c.collector.persistSeconds = live;
  }
  const raw = c.retentionDays,
    rollup = c.retention.rollupDays;
  const wantedRollup = rollupRetentionDays(raw, rollup);
  if (wantedRollup !== rollup) {
    const rule =
      raw === 0
        ? `${rollup} must be 0 (forever) when METRICS_RETENTION_DAYS is 0 (forever)`
        : `${rollup} must be 0 (forever) or at least METRICS_RETENTION_DAYS (${raw})`;
    out.push({
      field: 'storage.rollup_retention_days',
      variable: 'ROLLUP_RETENTION_DAYS',
      from: rollup,
      to: wantedRollup,
      rule: `${rule}: queries read old ranges from the rollups`,
    });
    c.retention.rollupDays = wantedRollup;
  }
  return out;
}

export function fromEnv(e: Env): AppConfig {
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    embeddedPgPort: e.EMBEDDED_PG_PORT,
    timescaledb: e.TIMESCALEDB,
    migrateOnStart: e.MIGRATE_ON_START,
    jobsEnabled: e.JOBS_ENABLED,
    db: {
      poolMax: e.DB_POOL_MAX,
      writeConnections: e.DB_WRITE_CONNECTIONS,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
      preparedReads: e.DB_PREPARED_READS,
    },
    ingest: {
      writeMethod: e.INGEST_WRITE_METHOD,
      maxBodyBytes: e.INGEST_MAX_BODY_BYTES,
      maxPointsPerRequest: e.INGEST_MAX_POINTS_PER_REQUEST,
      maxTags: e.INGEST_MAX_TAGS,
      maxNameLength: e.INGEST_MAX_NAME_LENGTH,
      maxTagKeyLength: e.INGEST_MAX_TAG_KEY_LENGTH,
      maxTagValueLength: e.INGEST_MAX_TAG_VALUE_LENGTH,
      maxFutureMs: e.INGEST_MAX_FUTURE_SECONDS * 1000,
      queueMaxPoints: e.INGEST_QUEUE_MAX_POINTS,
      flushMaxPoints: e.INGEST_FLUSH_MAX_POINTS,
      stallMs: e.WRITE_STALL_SECONDS * 1000,
    },
    series: { cacheSize: e.SERIES_CACHE_SIZE, maxSeries: e.MAX_SERIES },
    retentionDays: e.METRICS_RETENTION_DAYS,
    rollups: {
      refreshSeconds: e.ROLLUP_REFRESH_SECONDS,
      lagSeconds: e.ROLLUP_LAG_SECONDS,
      partitionPremakeDays: e.PARTITION_PREMAKE_DAYS,
    },
    query: {
      maxBuckets: e.QUERY_MAX_BUCKETS,
      autoBuckets: e.QUERY_AUTO_BUCKETS,
      maxSeries: e.QUERY_MAX_SERIES,
      maxGroups: e.QUERY_MAX_GROUPS,
    },
    webhooks: {
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
      retryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
      concurrency: e.WEBHOOK_CONCURRENCY,
    },
    pipelines: {
      maxCatchupWindows: e.PIPELINE_MAX_CATCHUP_WINDOWS,
      maxWindows: e.PIPELINE_MAX_WINDOWS,
      maxRows: e.PIPELINE_MAX_ROWS,
      runsRetentionDays: e.PIPELINE_RUNS_RETENTION_DAYS,
    },

    // Live streams, events and logs, service status, alerts (issue 5)
    streams: {
      maxConnections: e.STREAM_MAX_CONNECTIONS,
      maxSubscriptions: e.STREAM_MAX_SUBSCRIPTIONS,
      maxConnectionsPerKey: e.STREAM_MAX_CONNECTIONS_PER_KEY,
      bufferBytes: e.STREAM_BUFFER_BYTES,
      slowClientMs: e.STREAM_SLOW_CLIENT_SECONDS * 1000,
      replayPoints: e.STREAM_REPLAY_POINTS,
      heartbeatMs: e.STREAM_HEARTBEAT_SECONDS * 1000,
    },
    events: { retentionDays: e.EVENTS_RETENTION_DAYS },
    services: { ttlSeconds: e.SERVICE_TTL_SECONDS },
    alerts: { evaluationMs: e.ALERTS_EVALUATION_SECONDS * 1000 },
    auth: {
      mode: e.AUTH,
      enabled: authEnabled(e.AUTH, e.DATABASE_URL, e.HOST),
      keyCacheMs: e.AUTH_KEY_CACHE_SECONDS * 1000,
    },
    rateLimits: {
      enabled: e.RATE_LIMIT_ENABLED,
      perMinute: {
        ingest: e.RATE_LIMIT_INGEST,
        query: e.RATE_LIMIT_QUERY,
        admin: e.RATE_LIMIT_ADMIN,
        stream: e.RATE_LIMIT_STREAM,
        monitoring_metrics: e.RATE_LIMIT_MONITORING_METRICS,
        monitoring_logs: e.RATE_LIMIT_MONITORING_LOGS,
        monitoring_alerts: e.RATE_LIMIT_MONITORING_ALERTS,
        docs: e.RATE_LIMIT_DOCS,
        auth_failures: e.RATE_LIMIT_AUTH_FAILURES,
      },
      maxClients: e.RATE_LIMIT_MAX_CLIENTS,
    },
    reader: {
      role: e.GRAFANA_READER_ROLE === 'none' ? undefined : e.GRAFANA_READER_ROLE,
      statementTimeoutSeconds: e.READER_STATEMENT_TIMEOUT_SECONDS,
      watchdogIntervalMs: e.READER_WATCHDOG_INTERVAL_SECONDS * 1000,
    },
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT },
    selfMetrics: { persistSeconds: e.SELF_METRICS_PERSIST_SECONDS },
    environment: e.NODE_ENV,
    collector: {
      enabled: e.COLLECTOR_ENABLED,
      liveSeconds: e.METRICS_INTERVAL_LIVE,
      persistSeconds: e.METRICS_INTERVAL_PERSIST,
      hostname: e.COLLECTOR_HOSTNAME,
      bufferMaxPoints: e.COLLECTOR_BUFFER_MAX_POINTS,
      nvidiaSmiPath: e.NVIDIA_SMI_PATH,
    },
    retention: { rollupDays: e.ROLLUP_RETENTION_DAYS, intervalSeconds: e.RETENTION_INTERVAL_SECONDS },
    maintenance: {
      partitionPremakeSeconds: e.PARTITION_PREMAKE_INTERVAL_SECONDS,
      compressionEnabled: e.COMPRESSION_ENABLED,
      compressionSeconds: e.COMPRESSION_INTERVAL_SECONDS,
    },
    alerting: { enabled: e.ALERTING_ENABLED, queueSize: e.ALERT_QUEUE_SIZE, ingestionRate: e.ALERT_INGESTION_RATE },
    analytics: {
      anomalyMaxPoints: e.ANOMALY_MAX_POINTS,
      anomalyMaxSeries: e.ANOMALY_MAX_SERIES,
      anomalyWorkerMinPoints: e.ANOMALY_WORKER_MIN_POINTS,
      exportDir: e.EXPORT_DIR ?? `${e.DATA_DIR.replace(/\/+$/, '')}/exports`,
      exportMaxConcurrent: e.EXPORT_MAX_CONCURRENT,
      exportTimeoutMs: e.EXPORT_TIMEOUT_SECONDS * 1000,
      exportTtlMs: e.EXPORT_TTL_HOURS * 3_600_000,
      exportStallMs: e.EXPORT_STALL_SECONDS * 1000,
    },
  };
}

/** Addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * AUTH=auto requires keys everywhere except on the embedded default (no DATABASE_URL) bound to a
 * loopback address: a newcomer's `make run`, reachable from this machine only.
 */
export function authEnabled(mode: 'auto' | 'on' | 'off', databaseUrl: string | undefined, host: string): boolean {
  if (mode !== 'auto') return mode === 'on';
  return !(databaseUrl === undefined && isLoopbackHost(host));
}

/** A config for tests and tools: defaults plus the given env-style overrides. */
export function configWith(overrides: Record<string, string | undefined>): AppConfig {
  return loadConfig(overrides);
}
