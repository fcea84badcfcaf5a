import { invalidRequest } from '../common/errors.js';
import { isCleanText, isObject, name, Problems, text } from '../common/input.js';
import { parseTags, TagFilter } from '../query/query-spec.js';

/**
 * Alert rule bodies → a validated RuleSpec (all or nothing, every problem named). Pure.
 *
 * Threshold rules follow monitoring-api.md "Configure Alert": {name, type: "threshold", metric,
 * condition, threshold, duration_seconds, severity, notify: {email, webhook}}, plus `source` and
 * `tags` to pick series. Anomaly rules: {type: "anomaly", metric, algorithm, sensitivity,
 * window_seconds, direction}. Both take `duration_seconds` (how long the condition must hold
 * before the alert fires) and `recovery_seconds` (how long it must not hold before it resolves).
 */

export const CONDITIONS = {
  greater_than: { op: '>', test: (v: number, t: number) => v > t },
  greater_than_or_equal: { op: '>=', test: (v: number, t: number) => v >= t },
  less_than: { op: '<', test: (v: number, t: number) => v < t },
  less_than_or_equal: { op: '<=', test: (v: number, t: number) => v <= t },
  equal: { op: '=', test: (v: number, t: number) => v === t },
  not_equal: { op: '<>', test: (v: number, t: number) => v !== t },
} as const;
export type Condition = keyof typeof CONDITIONS;

const CONDITION_ALIASES: Record<string, Condition> = {
  greater_than: 'greater_than',
  gt: 'greater_than',
  '>': 'greater_than',
  above: 'greater_than',
  greater_than_or_equal: 'greater_than_or_equal',
  gte: 'greater_than_or_equal',
  ge: 'greater_than_or_equal',
  '>=': 'greater_than_or_equal',
  less_than: 'less_than',
  lt: 'less_than',
  '<': 'less_than',
  below: 'less_than',
  less_than_or_equal: 'less_than_or_equal',
  lte: 'less_than_or_equal',
  le: 'less_than_or_equal',
  '<=': 'less_than_or_equal',
  equal: 'equal',
  equals: 'equal',
  eq: 'equal',
  '==': 'equal',
  '=': 'equal',
  not_equal: 'not_equal',
  ne: 'not_equal',
  '!=': 'not_equal',
  '<>': 'not_equal',
};

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
const SEVERITY_ALIASES: Record<string, Severity> = {
  '1': 'info',
  info: 'info',
  low: 'info',
  '2': 'warning',
  warning: 'warning',
  warn: 'warning',
  medium: 'warning',
  '3': 'critical',
  critical: 'critical',
  crit: 'critical',
  high: 'critical',
  error: 'critical',
};

export const DIRECTIONS = ['both', 'above', 'below'] as const;
export type Direction = (typeof DIRECTIONS)[number];

/** `1`, `"warning"`, `"crit"` → a severity, or undefined. */
export function normaliseSeverity(v: unknown): Severity | undefined {
  return typeof v === 'number' || typeof v === 'string' ? SEVERITY_ALIASES[String(v).trim().toLowerCase()] : undefined;
}

export const DEFAULT_DURATION_SECONDS = 60;
export const DEFAULT_WINDOW_SECONDS = 3_600;
export const DEFAULT_SENSITIVITY = 0.5;
const MAX_DURATION_SECONDS = 7 * 86_400;
const MAX_WINDOW_SECONDS = 30 * 86_400;
const MIN_SECRET = 16;

export type RuleType = 'threshold' | 'anomaly';

export interface RuleSpec {
  name: string;
  type: RuleType;
  description: string | null;
  metric: string;
  source: string | null;
  tags: TagFilter[];
  condition: Condition | null;
  threshold: number | null;
  algorithm: string | null;
  sensitivity: number | null;
  windowSeconds: number | null;
  direction: Direction | null;
  durationSeconds: number;
  recoverySeconds: number;
  severity: Severity;
  notify: { webhook: string | null; email: string[] };
  /** A secret given by the user (`notify.secret` or `webhook_secret`). */
  secret: string | null;
  rotateSecret: boolean;
  enabled: boolean;
}

/** Fields a rule reply carries that a client may send back unchanged on PUT. */
const READ_ONLY = new Set([
  'id',
  'created_at',
  'updated_at',
  'webhook_signed',
  'status',
  'active_alerts',
  'last_evaluation',
]);
const FIELDS = new Set([
  'name',
  'type',
  'description',
  'metric',
  'source',
  'tags',
  'condition',
  'threshold',
  'algorithm',
  'sensitivity',
  'window_seconds',
  'direction',
  'duration_seconds',
  'recovery_seconds',
  'severity',
  'notify',
  'webhook_secret',
  'rotate_webhook_secret',
  'enabled',
]);

function seconds(p: Problems, v: unknown, field: string, def: number, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    return p.add(field, `must be a whole number of seconds from ${min} to ${max}`);
  return v;
}

export function parseRuleSpec(body: unknown, algorithms: readonly string[]): RuleSpec {
  if (!isObject(body))
    throw invalidRequest(
      'Request body must be a JSON object {name, type, metric, condition, threshold, duration_seconds, severity, notify}',
    );
  const p = new Problems();
  for (const k of Object.keys(body))
    if (!FIELDS.has(k) && !READ_ONLY.has(k)) p.add(k, 'is not a field of an alert rule');
  const ruleName = name(p, body.name, 'name');
  const type = body.type === undefined ? (body.algorithm !== undefined ? 'anomaly' : 'threshold') : body.type;
  if (type !== 'threshold' && type !== 'anomaly') p.add('type', 'must be threshold or anomaly');
  const description = text(p, body.description, 'description', { max: 2_000 }) ?? null;
  const metric = name(p, body.metric, 'metric');
  const source = name(p, body.source, 'source', 200, false) ?? null;
  let tags: TagFilter[] = [];
  try {
    tags = parseTags(body.tags, 'tags');
  } catch (err) {
    p.add('tags', (err as Error).message);
  }

  let condition: Condition | null = null,
    threshold: number | null = null;
  let algorithm: string | null = null,
    sensitivity: number | null = null,
    windowSeconds: number | null = null,
    direction: Direction | null = null;
  if (type === 'threshold') {
    condition =
      typeof body.condition === 'string' ? (CONDITION_ALIASES[body.condition.trim().toLowerCase()] ?? null) : null;
    if (!condition)
      p.add(
        'condition',
        `is required for a threshold rule: one of ${Object.keys(CONDITIONS).join(', ')} (or gt, >=, <, …)`,
      );
    if (typeof body.threshold !== 'number' || !Number.isFinite(body.threshold))
      p.add('threshold', 'is required for a threshold rule and must be a finite number');
    else threshold = body.threshold;
    for (const k of ['algorithm', 'sensitivity', 'window_seconds', 'direction'])
      if (body[k] !== undefined) p.add(k, 'applies to anomaly rules only');
  } else if (type === 'anomaly') {
    algorithm =
      body.algorithm === undefined
        ? algorithms[0]
        : typeof body.algorithm === 'string' && algorithms.includes(body.algorithm)
          ? body.algorithm
          : null;
    if (!algorithm) p.add('algorithm', `must be one of ${algorithms.join(', ')}`);
    sensitivity =
      body.sensitivity === undefined
        ? DEFAULT_SENSITIVITY
        : typeof body.sensitivity === 'number' && body.sensitivity > 0 && body.sensitivity <= 1
          ? body.sensitivity
          : null;
    if (sensitivity === null) p.add('sensitivity', 'must be a number above 0 and at most 1 (higher finds more)');
    windowSeconds =
      seconds(p, body.window_seconds, 'window_seconds', DEFAULT_WINDOW_SECONDS, 60, MAX_WINDOW_SECONDS) ?? null;
    direction =
      body.direction === undefined
        ? 'both'
        : (DIRECTIONS as readonly unknown[]).includes(body.direction)
          ? (body.direction as Direction)
          : null;
    if (!direction) p.add('direction', 'must be both, above or below');
    for (const k of ['condition', 'threshold']) if (body[k] !== undefined) p.add(k, 'applies to threshold rules only');
  }
  const durationSeconds = seconds(
    p,
    body.duration_seconds,
    'duration_seconds',
    DEFAULT_DURATION_SECONDS,
    0,
    MAX_DURATION_SECONDS,
  );
  const recoverySeconds = seconds(
    p,
    body.recovery_seconds,
    'recovery_seconds',
    durationSeconds ?? DEFAULT_DURATION_SECONDS,
    0,
    MAX_DURATION_SECONDS,
  );
  const severity =
    body.severity === undefined
      ? 'warning'
      : (normaliseSeverity(body.severity) ?? p.add('severity', 'must be info, warning or critical (or 1, 2, 3)'));

  let webhook: string | null = null,
    email: string[] = [],
    secret: string | null = null;
  if (body.notify !== undefined && body.notify !== null) {
    if (!isObject(body.notify)) p.add('notify', 'must be an object {webhook?, email?, secret?}');
    else {
      for (const k of Object.keys(body.notify))
        if (!['webhook', 'email', 'secret'].includes(k))
          p.add(`notify.${k}`, 'is not a notification setting (webhook, email, secret)');
      webhook = text(p, body.notify.webhook, 'notify.webhook', { max: 2_048 }) || null;
      const e = body.notify.email;
      const list = e === undefined || e === null ? [] : typeof e === 'string' ? [e] : Array.isArray(e) ? e : null;
      if (
        !list ||
        list.length > 50 ||
        !list.every((x) => typeof x === 'string' && /^[^\s@]+@[^\s@]+$/.test(x) && x.length <= 320 && isCleanText(x))
      ) {
        p.add('notify.email', 'must be an email address or a list of at most 50');
      } else email = list as string[];
      secret = secretValue(p, body.notify.secret, 'notify.secret');
    }
  }
  if (body.webhook_secret !== undefined) secret = secretValue(p, body.webhook_secret, 'webhook_secret');
  const rotateSecret = body.rotate_webhook_secret === true;
  if (body.rotate_webhook_secret !== undefined && typeof body.rotate_webhook_secret !== 'boolean')
    p.add('rotate_webhook_secret', 'must be true or false');
  if ((secret || rotateSecret) && !webhook)
    p.add(secret ? 'notify.secret' : 'rotate_webhook_secret', 'needs notify.webhook');
  if (body.enabled !== undefined && typeof body.enabled !== 'boolean') p.add('enabled', 'must be true or false');
  p.throwIfAny();
  return {
    name: ruleName!,
    type: type as RuleSpec['type'],
    description,
    metric: metric!,
    source,
    tags,
    condition,
    threshold,
    algorithm,
    sensitivity,
    windowSeconds,
    direction,
    durationSeconds: durationSeconds!,
    recoverySeconds: recoverySeconds!,
    severity: severity!,
    notify: { webhook, email },
    secret,
    rotateSecret,
    enabled: body.enabled !== false,
  };
}

function secretValue(p: Problems, v: unknown, field: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length < MIN_SECRET || v.length > 256 || !isCleanText(v))
    return p.add(field, `must be a string of ${MIN_SECRET} to 256 characters`) ?? null;
  return v;
}

/** `cpu_usage{host=a,region=eu}`: how an alert names the series it is about. */
export function seriesLabel(metric: string, source: string | null, tags: Readonly<Record<string, string>>): string {
  const parts = [...(source ? [`source=${source}`] : []), ...Object.entries(tags).map(([k, v]) => `${k}=${v}`)];
  return parts.length ? `${metric}{${parts.join(',')}}` : metric;
}

/** `5m`, `90s`, `0s`. */
export function humanSeconds(s: number): string {
  return s > 0 && s % 3600 === 0 ? `${s / 3600}h` : s > 0 && s % 60 === 0 ? `${s / 60}m` : `${s}s`;
}
