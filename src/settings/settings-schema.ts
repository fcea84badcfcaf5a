import type { FieldProblem } from '../common/errors.js';
import { formatDuration, parseDuration, SECOND } from '../common/time.js';
import type { AppConfig } from '../config/config.js';
import type { Flavour } from '../database/database.js';
import { rollupRetentionDays } from '../retention/retention-plan.js';
import { compressesChunks } from '../storage/capabilities.js';

/**
 * The runtime configuration document (GET/PUT /api/v1/config) and how each of its fields maps to
 * AppConfig. Pure: no NestJS, no database. Precedence: stored settings over environment over
 * defaults; the environment (with its defaults) is the `baseline`, stored settings are a sparse
 * map from field path to value.
 */
export type SettingValue = number | boolean | string;
/** Stored overrides: `{"storage.retention_days": 3}`. */
export type StoredSettings = Record<string, SettingValue>;
/** `live`: applied at once; `restart`: stored now, used from the next start; `read-only`: reported, never changed. */
export type ApplyMode = 'live' | 'restart' | 'read-only';

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };
export type MutableConfig = Mutable<AppConfig>;

export interface Setting {
  path: string;
  type: 'integer' | 'boolean' | 'duration';
  /** Bounds: of the value for integers, in seconds for durations. */
  min?: number;
  max?: number;
  apply: ApplyMode;
  /** The environment variable that sets it (its baseline). */
  env?: string;
  description: string;
  get(c: AppConfig, flavour: Flavour): SettingValue;
  set?(c: MutableConfig, v: SettingValue): void;
}

const seconds = (s: number) => formatDuration(s * SECOND);
const int = (v: SettingValue) => v as number;
const durationSeconds = (v: SettingValue) => parseDuration(String(v)) / SECOND;

export const SETTINGS: readonly Setting[] = [
  {
    path: 'storage.retention_days',
    type: 'integer',
    min: 0,
    max: 100_000,
    apply: 'live',
    env: 'METRICS_RETENTION_DAYS',
    description:
      'days raw points are kept (0: forever); older points are refused at ingest and dropped by the retention job',
    get: (c) => c.retentionDays,
    set: (c, v) => (c.retentionDays = int(v)),
  },
  {
    path: 'storage.rollup_retention_days',
    type: 'integer',
    min: 0,
    max: 100_000,
    apply: 'live',
    env: 'ROLLUP_RETENTION_DAYS',
    description: 'days the 1m/5m/1h/1d rollups are kept (0: forever); at least retention_days',
    get: (c) => c.retention.rollupDays,
    set: (c, v) => (c.retention.rollupDays = int(v)),
  },
  {
    path: 'storage.compression_enabled',
    type: 'boolean',
    apply: 'live',
    env: 'COMPRESSION_ENABLED',
    description: 'TimescaleDB: compress chunks older than two days (always false on plain PostgreSQL)',
    get: (c, flavour) => compressesChunks(flavour) && c.maintenance.compressionEnabled,
    set: (c, v) => (c.maintenance.compressionEnabled = v as boolean),
  },
  {
    path: 'storage.batch_size',
    type: 'integer',
    min: 100,
    max: 10_000_000,
    apply: 'live',
    env: 'INGEST_FLUSH_MAX_POINTS',
    description: 'points per write transaction (concurrent requests are grouped up to this)',
    get: (c) => c.ingest.flushMaxPoints,
    set: (c, v) => (c.ingest.flushMaxPoints = int(v)),
  },
  {
    path: 'processing.buffer_size',
    type: 'integer',
    min: 1_000,
    max: 100_000_000,
    apply: 'live',
    env: 'INGEST_QUEUE_MAX_POINTS',
    description: 'points accepted and not yet committed; past it ingest answers 503 + Retry-After',
    get: (c) => c.ingest.queueMaxPoints,
    set: (c, v) => (c.ingest.queueMaxPoints = int(v)),
  },
  {
    path: 'processing.flush_interval',
    type: 'duration',
    apply: 'read-only',
    description: 'always 0s: every write is committed before the reply (group commit, no flush timer)',
    get: () => '0s',
  },
  {
    path: 'processing.worker_threads',
    type: 'integer',
    min: 1,
    max: 32,
    apply: 'restart',
    env: 'DB_WRITE_CONNECTIONS',
    description: 'concurrent write transactions (connections of the write pool); used from the next start',
    get: (c) => c.db.writeConnections,
    set: (c, v) => (c.db.writeConnections = int(v)),
  },
  {
    path: 'alerting.enabled',
    type: 'boolean',
    apply: 'live',
    env: 'ALERTING_ENABLED',
    description: 'flag the service itself in GET /api/v1/system/performance when a threshold is crossed',
    get: (c) => c.alerting.enabled,
    set: (c, v) => (c.alerting.enabled = v as boolean),
  },
  {
    path: 'alerting.thresholds.queue_size',
    type: 'integer',
    min: 0,
    max: 1_000_000_000,
    apply: 'live',
    env: 'ALERT_QUEUE_SIZE',
    description: 'points waiting in the ingest buffer above which the service is flagged (0: never)',
    get: (c) => c.alerting.queueSize,
    set: (c, v) => (c.alerting.queueSize = int(v)),
  },
  {
    path: 'alerting.thresholds.ingestion_rate',
    type: 'integer',
    min: 0,
    max: 1_000_000_000,
    apply: 'live',
    env: 'ALERT_INGESTION_RATE',
    description: 'points per second above which the service is flagged (0: never)',
    get: (c) => c.alerting.ingestionRate,
    set: (c, v) => (c.alerting.ingestionRate = int(v)),
  },
  {
    path: 'collector.enabled',
    type: 'boolean',
    apply: 'live',
    env: 'COLLECTOR_ENABLED',
    description: 'sample this host (and its NVIDIA GPUs) and persist the samples',
    get: (c) => c.collector.enabled,
    set: (c, v) => (c.collector.enabled = v as boolean),
  },
  {
    path: 'collector.interval_live',
    type: 'duration',
    min: 1,
    max: 3_600,
    apply: 'live',
    env: 'METRICS_INTERVAL_LIVE',
    description: 'how often the host and GPUs are sampled into the live cache',
    get: (c) => seconds(c.collector.liveSeconds),
    set: (c, v) => (c.collector.liveSeconds = durationSeconds(v)),
  },
  {
    path: 'collector.interval_persist',
    type: 'duration',
    min: 1,
    max: 86_400,
    apply: 'live',
    env: 'METRICS_INTERVAL_PERSIST',
    description: 'how often the samples gathered since the last persist are written; at least interval_live',
    get: (c) => seconds(c.collector.persistSeconds),
    set: (c, v) => (c.collector.persistSeconds = durationSeconds(v)),
  },
  {
    path: 'collector.buffer_max_points',
    type: 'integer',
    min: 1_000,
    max: 100_000_000,
    apply: 'live',
    env: 'COLLECTOR_BUFFER_MAX_POINTS',
    description: 'samples kept while the database is unreachable; past it the oldest are dropped (and counted)',
    get: (c) => c.collector.bufferMaxPoints,
    set: (c, v) => (c.collector.bufferMaxPoints = int(v)),
  },
  {
    path: 'jobs.rollup_refresh_interval',
    type: 'duration',
    min: 1,
    max: 86_400,
    apply: 'live',
    env: 'ROLLUP_REFRESH_SECONDS',
    description: 'schedule of the rollup-refresh job',
    get: (c) => seconds(c.rollups.refreshSeconds),
    set: (c, v) => (c.rollups.refreshSeconds = durationSeconds(v)),
  },
  {
    path: 'jobs.retention_interval',
    type: 'duration',
    min: 1,
    max: 86_400,
    apply: 'live',
    env: 'RETENTION_INTERVAL_SECONDS',
    description: 'schedule of the retention job',
    get: (c) => seconds(c.retention.intervalSeconds),
    set: (c, v) => (c.retention.intervalSeconds = durationSeconds(v)),
  },
  {
    path: 'jobs.partition_premake_interval',
    type: 'duration',
    min: 1,
    max: 86_400,
    apply: 'live',
    env: 'PARTITION_PREMAKE_INTERVAL_SECONDS',
    description: 'schedule of the partition-premake job (plain PostgreSQL)',
    get: (c) => seconds(c.maintenance.partitionPremakeSeconds),
    set: (c, v) => (c.maintenance.partitionPremakeSeconds = durationSeconds(v)),
  },
  {
    path: 'jobs.compression_interval',
    type: 'duration',
    min: 1,
    max: 86_400,
    apply: 'live',
    env: 'COMPRESSION_INTERVAL_SECONDS',
    description: 'schedule of the compression job (TimescaleDB)',
    get: (c) => seconds(c.maintenance.compressionSeconds),
    set: (c, v) => (c.maintenance.compressionSeconds = durationSeconds(v)),
  },
];

const BY_PATH = new Map(SETTINGS.map((s) => [s.path, s]));
const GROUPS = new Set(
  SETTINGS.flatMap((s) =>
    s.path
      .split('.')
      .slice(0, -1)
      .map((_, i, parts) => parts.slice(0, i + 1).join('.')),
  ),
);

export const settingByPath = (path: string) => BY_PATH.get(path);

/** The nested document of the reference (`{"storage": {"retention_days": 7, …}, …}`). */
export function settingsDocument(c: AppConfig, flavour: Flavour): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const parts = s.path.split('.');
    let node = doc;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]] = s.get(c, flavour);
  }
  return doc;
}

/** One field of a PUT body, checked against its type and bounds; returns the normalised value or a problem. */
export function parseValue(s: Setting, raw: unknown): { value: SettingValue } | { problem: string } {
  if (s.type === 'boolean') return typeof raw === 'boolean' ? { value: raw } : { problem: 'must be true or false' };
  if (s.type === 'integer') {
    if (typeof raw !== 'number' || !Number.isInteger(raw)) return { problem: 'must be an integer' };
    if ((s.min !== undefined && raw < s.min) || (s.max !== undefined && raw > s.max))
      return { problem: `must be between ${s.min} and ${s.max}` };
    return { value: raw };
  }
  // Durations: a number of seconds, or text such as "30s", "5m", "1h".
  let ms: number;
  if (typeof raw === 'number') ms = Number.isFinite(raw) ? raw * SECOND : NaN;
  else if (typeof raw === 'string') ms = /^0+(ms|[smhdw])?$/.test(raw.trim()) ? 0 : parseDuration(raw);
  else return { problem: 'must be a duration such as "30s", "5m" or a number of seconds' };
  // 0 is no setting's value, but a read-only one may hold it (flush_interval "0s"): GET, edit, PUT
  // sends it back, and readOnlyProblems then judges it against the current value.
  if (!Number.isInteger(ms) || ms < 0 || (ms === 0 && s.apply !== 'read-only') || ms % SECOND !== 0)
    return { problem: 'must be a whole number of seconds, such as "30s", "5m" or 30' };
  const sec = ms / SECOND;
  if ((s.min !== undefined && sec < s.min) || (s.max !== undefined && sec > s.max)) {
    return { problem: `must be between ${seconds(s.min ?? 1)} and ${seconds(s.max ?? sec)}` };
  }
  return { value: sec === 0 ? '0s' : seconds(sec) };
}

/**
 * A partial document from PUT: every leaf is checked; `null` means "remove the stored value"
 * (back to the environment or default). Unknown fields are problems, never ignored: a typo must
 * not look applied.
 */
export function parsePatch(body: unknown): { values: Map<string, SettingValue | null>; problems: FieldProblem[] } {
  const values = new Map<string, SettingValue | null>();
  const problems: FieldProblem[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    problems.push({ field: '(body)', message: 'must be a JSON object such as {"storage": {"retention_days": 14}}' });
    return { values, problems };
  }
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [key, raw] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      const setting = BY_PATH.get(path);
      if (setting) {
        if (raw === null) values.set(path, null);
        else {
          const r = parseValue(setting, raw);
          if ('problem' in r) problems.push({ field: path, message: r.problem });
          else values.set(path, r.value);
        }
      } else if (GROUPS.has(path)) {
        if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) walk(raw as Record<string, unknown>, path);
        else problems.push({ field: path, message: 'must be an object' });
      } else {
        problems.push({ field: path, message: 'is not a setting (see GET /api/v1/config)' });
      }
    }
  };
  walk(body as Record<string, unknown>, '');
  return { values, problems };
}

/** Stored overrides after a patch: set values replace, nulls remove. */
export function mergeStored(stored: StoredSettings, patch: Map<string, SettingValue | null>): StoredSettings {
  const out: StoredSettings = { ...stored };
  for (const [path, v] of patch) {
    // A read-only field sent back unchanged (readOnlyProblems refuses any other value) is not a setting to store.
    if (BY_PATH.get(path)?.apply === 'read-only') continue;
    if (v === null) delete out[path];
    else out[path] = v;
  }
  return out;
}

/** The baseline (environment and defaults) with the stored overrides applied: a new object. Unknown stored keys are skipped. */
export function effectiveConfig(baseline: AppConfig, stored: StoredSettings): AppConfig {
  const c = structuredClone(baseline) as MutableConfig;
  for (const [path, v] of Object.entries(stored)) BY_PATH.get(path)?.set?.(c, v);
  return c as AppConfig;
}

/**
 * Problems with a whole configuration: read-only fields changed, and rules between fields.
 * `patch` names the fields the request set, so the problem points at what the caller sent.
 */
export function checkConfig(
  next: AppConfig,
  current: AppConfig,
  flavour: Flavour,
  patch: ReadonlyMap<string, SettingValue | null>,
): FieldProblem[] {
  const problems = readOnlyProblems(patch, current, flavour);
  // A rule is checked only when the request sets one of its fields: an unrelated change is never refused for the environment's values.
  const named = (...paths: string[]) => paths.find((p) => patch.has(p));
  if (!compressesChunks(flavour) && patch.get('storage.compression_enabled') === true) {
    problems.push({
      field: 'storage.compression_enabled',
      message: 'needs TimescaleDB; this database is plain PostgreSQL',
    });
  }
  const raw = next.retentionDays,
    rollup = next.retention.rollupDays;
  const retentionField = named('storage.rollup_retention_days', 'storage.retention_days');
  if (retentionField && rollupRetentionDays(raw, rollup) !== rollup) {
    problems.push({
      field: retentionField,
      message: `rollup_retention_days (${rollup}) must be 0 (forever) or at least retention_days (${raw === 0 ? 'forever' : raw}): queries read old ranges from the rollups`,
    });
  }
  const intervalField = named('collector.interval_persist', 'collector.interval_live');
  if (intervalField && next.collector.persistSeconds < next.collector.liveSeconds) {
    problems.push({
      field: intervalField,
      message: `interval_persist (${seconds(next.collector.persistSeconds)}) must be at least interval_live (${seconds(next.collector.liveSeconds)})`,
    });
  }
  // The write pool takes worker_threads + 1 of DB_POOL_MAX connections (Database.open); reads need
  // at least 2 of the rest (queries and jobs, and the prepared bucket reads), or a busy job starves
  // every query of its one connection.
  // Checked only on a change: putting back the value the process runs with is always accepted.
  const maxWriters = Math.max(1, next.db.poolMax - 3);
  const writers = next.db.writeConnections;
  if (patch.has('processing.worker_threads') && writers !== current.db.writeConnections && writers > maxWriters) {
    problems.push({
      field: 'processing.worker_threads',
      message: `at most ${maxWriters} with DB_POOL_MAX=${next.db.poolMax}: the writer takes worker_threads + 1 connections and reads need at least 2 of the rest (raise DB_POOL_MAX for more)`,
    });
  }
  return problems;
}

/** Read-only fields sent with another value than they have (sending them back unchanged is fine). */
export function readOnlyProblems(
  patch: ReadonlyMap<string, SettingValue | null>,
  current: AppConfig,
  flavour: Flavour,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const [path, v] of patch) {
    const s = BY_PATH.get(path)!;
    if (s.apply === 'read-only' && v !== null && v !== s.get(current, flavour))
      problems.push({ field: path, message: `is read-only: ${s.description}` });
  }
  return problems;
}

export interface Change {
  field: string;
  before: SettingValue;
  after: SettingValue;
}

/** Fields whose value differs between two configurations. */
export function diffConfig(before: AppConfig, after: AppConfig, flavour: Flavour): Change[] {
  const out: Change[] = [];
  for (const s of SETTINGS) {
    const b = s.get(before, flavour),
      a = s.get(after, flavour);
    if (a !== b) out.push({ field: s.path, before: b, after: a });
  }
  return out;
}

/** Copies the live fields of `from` into the running configuration `into` (restart-only fields keep their running value). */
export function applyLive(into: AppConfig, from: AppConfig): void {
  for (const s of SETTINGS) if (s.apply === 'live' && s.set) s.set(into as MutableConfig, s.get(from, 'timescaledb'));
}

/** Where each field's value comes from: the stored settings, the environment, or the default. */
export function settingSources(
  stored: StoredSettings,
  baseline: AppConfig,
  defaults: AppConfig,
): Record<string, 'stored' | 'environment' | 'default'> {
  const out: Record<string, 'stored' | 'environment' | 'default'> = {};
  for (const s of SETTINGS) {
    if (s.apply === 'read-only') continue;
    out[s.path] =
      s.path in stored
        ? 'stored'
        : s.get(baseline, 'timescaledb') !== s.get(defaults, 'timescaledb')
          ? 'environment'
          : 'default';
  }
  return out;
}
