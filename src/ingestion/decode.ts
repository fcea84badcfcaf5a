import { FieldProblem, fieldErrors, invalidRequest, payloadTooLarge } from '../common/errors.js';
import { DAY, epochToMs, parseIsoTimestamp, Precision } from '../common/time.js';
import { PointBatch, PointBatchBuilder } from '../storage/point-batch.js';

/**
 * JSON ingest bodies → one PointBatch, all or nothing. Pure: no NestJS, no database.
 *
 * The per-point cost is the ingest bottleneck (about 2.5 µs per point is the whole budget), so a
 * series is validated once per request: points are looked up by a raw key built from their name,
 * source and tags as given, and only an unseen key is validated and canonicalised.
 */

export interface IngestLimits {
  maxPoints: number;
  maxTags: number;
  maxNameLength: number;
  maxTagKeyLength: number;
  maxTagValueLength: number;
  maxFutureMs: number;
  /** Points older than this many days are refused (0: no limit). */
  retentionDays: number;
}

export interface DecodeContext {
  now: number;
  precision?: Precision;
  limits: IngestLimits;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:\-]*$/;
const TAG_KEY = /^[A-Za-z_][A-Za-z0-9_.\-]*$/;
const RESERVED_TAG_KEYS = new Set(['constructor', 'prototype']);
const MAX_UNIT_LENGTH = 64;
const MAX_PROBLEMS = 20;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

class Decoder {
  readonly builder: PointBatchBuilder;
  readonly problems: FieldProblem[] = [];
  private readonly seen = new Map<string, number>();
  private lastTsText = '';
  private lastTsMs = NaN;
  private readonly minTime: number;
  private readonly maxTime: number;

  constructor(
    private readonly ctx: DecodeContext,
    capacity: number,
  ) {
    this.builder = new PointBatchBuilder(capacity);
    const l = ctx.limits;
    this.minTime = l.retentionDays > 0 ? ctx.now - l.retentionDays * DAY : -Infinity;
    this.maxTime = ctx.now + l.maxFutureMs;
  }

  get full(): boolean {
    return this.problems.length >= MAX_PROBLEMS;
  }

  problem(field: string, message: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push({ field, message });
  }

  /** `{source, timestamp?, metrics: [...]}` (collector-api.md "Submit Metrics"). */
  submission(body: Json, path: string): void {
    const source = this.source(body.source, `${path}source`);
    const batchTime = body.timestamp === undefined || body.timestamp === null ? this.ctx.now : this.time(body.timestamp, `${path}timestamp`);
    const metrics = body.metrics;
    if (!Array.isArray(metrics)) {
      this.problem(`${path}metrics`, 'must be an array of {name, value, unit?, tags?, timestamp?}');
      return;
    }
    if (source === undefined || Number.isNaN(batchTime)) return;
    for (let i = 0; i < metrics.length && !this.full; i++) this.point(metrics[i], `${path}metrics[${i}]`, source, batchTime);
  }

  /** `{service, metric_type, value, unit?, tags?, timestamp?}` (system-monitor-integration.md "Metrics Reporting"). */
  simple(body: Json, path: string): void {
    const source = this.source(body.service, `${path}service`);
    if (source === undefined) return;
    this.point({ name: body.metric_type, value: body.value, unit: body.unit, tags: body.tags, timestamp: body.timestamp }, path, source, this.ctx.now, 'metric_type');
  }

  point(m: unknown, path: string, source: string, defaultTime: number, nameField = 'name'): void {
    if (!isObject(m)) {
      this.problem(path, 'must be an object {name, value, unit?, tags?, timestamp?}');
      return;
    }
    const name = m.name;
    const value = m.value;
    const tags = m.tags;
    if (typeof name !== 'string') {
      this.problem(`${path}.${nameField}`, 'is required and must be a string');
      return;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      this.problem(`${path}.value`, typeof value === 'number' ? 'must be a finite number' : 'is required and must be a number (strings are not converted)');
      return;
    }
    const time = m.timestamp === undefined || m.timestamp === null ? defaultTime : this.time(m.timestamp, `${path}.timestamp`);
    if (Number.isNaN(time)) return;

    // Raw key of the series as given; only a new one is validated.
    let raw = name + '\u0000' + source;
    if (tags !== undefined && tags !== null) {
      if (!isObject(tags)) {
        this.problem(`${path}.tags`, 'must be an object of string values');
        return;
      }
      for (const k in tags) {
        const v = tags[k];
        if (typeof v !== 'string') {
          this.problem(`${path}.tags.${k}`, 'must be a string');
          return;
        }
        raw += '\u0000' + k + '\u0000' + v;
      }
    }
    let idx = this.seen.get(raw);
    if (idx === undefined) {
      if (!this.validSeries(name, tags as Record<string, string> | undefined | null, path, nameField)) return;
      idx = this.builder.addSeries(name, source, (tags as Record<string, string> | null) ?? undefined, null);
      this.seen.set(raw, idx);
    }
    const unit = m.unit;
    if (unit !== undefined && unit !== null) {
      if (typeof unit !== 'string' || unit.length > MAX_UNIT_LENGTH || !isCleanText(unit)) {
        this.problem(`${path}.unit`, `must be a string of at most ${MAX_UNIT_LENGTH} characters`);
        return;
      }
      this.builder.setUnit(idx, unit);
    }
    this.builder.push(idx, time, value);
  }

  source(v: unknown, field: string): string | undefined {
    if (typeof v !== 'string' || v.length === 0) {
      this.problem(field, 'is required and must be a non-empty string');
      return undefined;
    }
    if (v.length > this.ctx.limits.maxNameLength || !isCleanText(v)) {
      this.problem(field, `must be at most ${this.ctx.limits.maxNameLength} characters of valid Unicode without control characters`);
      return undefined;
    }
    return v;
  }

  /** Epoch ms, or NaN after recording why not. */
  time(v: unknown, field: string): number {
    let ms: number;
    if (typeof v === 'string') {
      if (v === this.lastTsText) ms = this.lastTsMs;
      else {
        ms = parseIsoTimestamp(v);
        this.lastTsText = v;
        this.lastTsMs = ms;
      }
      if (Number.isNaN(ms)) {
        this.problem(field, 'must be an ISO 8601 date-time with a zone (2024-01-15T10:30:00Z) or epoch milliseconds');
        return NaN;
      }
    } else if (typeof v === 'number') {
      const r = epochToMs(v, this.ctx.precision);
      if (typeof r === 'string') {
        this.problem(field, r);
        return NaN;
      }
      ms = r;
    } else {
      this.problem(field, 'must be an ISO 8601 string or epoch milliseconds');
      return NaN;
    }
    if (ms > this.maxTime) {
      this.problem(field, `is more than ${this.ctx.limits.maxFutureMs / 1000} s in the future (INGEST_MAX_FUTURE_SECONDS)`);
      return NaN;
    }
    if (ms < this.minTime) {
      this.problem(field, `is older than the retention of ${this.ctx.limits.retentionDays} days (METRICS_RETENTION_DAYS)`);
      return NaN;
    }
    return ms;
  }

  private validSeries(name: string, tags: Record<string, string> | undefined | null, path: string, nameField: string): boolean {
    const l = this.ctx.limits;
    if (name.length === 0 || name.length > l.maxNameLength || !NAME.test(name) || name.startsWith('__')) {
      this.problem(
        `${path}.${nameField}`,
        name.length > l.maxNameLength
          ? `is longer than ${l.maxNameLength} characters`
          : 'must start with a letter or _ and hold only letters, digits, _ . : - (names starting with __ are reserved)',
      );
      return false;
    }
    if (!tags) return true;
    let count = 0;
    for (const k in tags) {
      if (++count > l.maxTags) {
        this.problem(`${path}.tags`, `has more than ${l.maxTags} tags (INGEST_MAX_TAGS)`);
        return false;
      }
      if (k.length > l.maxTagKeyLength || !TAG_KEY.test(k) || k.startsWith('__') || RESERVED_TAG_KEYS.has(k)) {
        this.problem(
          `${path}.tags`,
          k.length > l.maxTagKeyLength
            ? `has a key longer than ${l.maxTagKeyLength} characters`
            : `key ${JSON.stringify(k.slice(0, 64))} must start with a letter or _ and hold only letters, digits, _ . - (__*, constructor and prototype are reserved)`,
        );
        return false;
      }
      const v = tags[k];
      if (v.length === 0 || v.length > l.maxTagValueLength || !isCleanText(v)) {
        this.problem(`${path}.tags.${k}`, `must be 1 to ${l.maxTagValueLength} characters of valid Unicode without NUL`);
        return false;
      }
    }
    return true;
  }
}

/** Well-formed UTF-16 (no lone surrogates, which PostgreSQL could not store) and no NUL. */
function isCleanText(s: string): boolean {
  return !s.includes('\u0000') && (s as string & { isWellFormed(): boolean }).isWellFormed();
}

function finish(d: Decoder): PointBatch {
  if (d.problems.length > 0) throw fieldErrors(d.problems);
  return d.builder.build();
}

function countPoints(n: number, limits: IngestLimits): void {
  if (n > limits.maxPoints) {
    throw payloadTooLarge(`Too many points in one request: ${n} > ${limits.maxPoints} (INGEST_MAX_POINTS_PER_REQUEST); split the request`, {
      points: n,
      limit: limits.maxPoints,
    });
  }
}

function requireObject(body: unknown, what: string): Json {
  if (!isObject(body)) throw invalidRequest(`Request body must be a JSON object: ${what}`);
  return body;
}

/** POST /api/v1/metrics: the reference submission, or the system-monitor `{service, metric_type, value}` shape. */
export function decodeSubmission(body: unknown, ctx: DecodeContext): PointBatch {
  const obj = requireObject(body, '{source, timestamp?, metrics: [...]} or {service, metric_type, value}');
  if ('metrics' in obj || 'source' in obj) {
    const n = Array.isArray(obj.metrics) ? obj.metrics.length : 0;
    countPoints(n, ctx.limits);
    const d = new Decoder(ctx, n);
    d.submission(obj, '');
    return finish(d);
  }
  if ('metric_type' in obj || 'service' in obj) {
    const d = new Decoder(ctx, 1);
    d.simple(obj, '');
    return finish(d);
  }
  throw invalidRequest('Request body must be {source, timestamp?, metrics: [...]} or {service, metric_type, value}', {
    field: 'metrics',
  });
}

/** POST /api/v1/metrics/batch: `{batches: [submission, ...]}`. */
export function decodeBatches(body: unknown, ctx: DecodeContext): PointBatch {
  const obj = requireObject(body, '{batches: [{source, timestamp?, metrics: [...]}, ...]}');
  const batches = obj.batches;
  if (!Array.isArray(batches)) throw fieldErrors([{ field: 'batches', message: 'is required and must be an array' }]);
  let n = 0;
  for (const b of batches) if (isObject(b) && Array.isArray(b.metrics)) n += b.metrics.length;
  countPoints(n, ctx.limits);
  const d = new Decoder(ctx, n);
  for (let i = 0; i < batches.length && !d.full; i++) {
    const b = batches[i];
    if (!isObject(b)) d.problem(`batches[${i}]`, 'must be an object {source, timestamp?, metrics: [...]}');
    else if ('metric_type' in b && !('metrics' in b)) d.simple(b, `batches[${i}].`);
    else d.submission(b, `batches[${i}].`);
  }
  return finish(d);
}

/**
 * POST /api/v2/app/:appId/metrics (metrics-collection-api-v2.md): `{metrics: [{name, value,
 * timestamp (epoch ms), tags, profileId}]}`; the app id is the source, profileId becomes a tag.
 */
export function decodeAppMetrics(appId: string, body: unknown, ctx: DecodeContext): PointBatch {
  const obj = requireObject(body, '{metrics: [{name, value, timestamp, tags, profileId}]}');
  const metrics = obj.metrics;
  if (!Array.isArray(metrics)) throw fieldErrors([{ field: 'metrics', message: 'is required and must be an array' }]);
  countPoints(metrics.length, ctx.limits);
  const d = new Decoder(ctx, metrics.length);
  const source = d.source(appId, 'appId');
  if (source !== undefined) {
    for (let i = 0; i < metrics.length && !d.full; i++) {
      const m = metrics[i];
      if (isObject(m) && m.profileId !== undefined) {
        if (typeof m.profileId !== 'string') d.problem(`metrics[${i}].profileId`, 'must be a string');
        else if (m.tags === undefined || m.tags === null || isObject(m.tags)) m.tags = { ...(m.tags ?? {}), profileId: m.profileId };
      }
      d.point(m, `metrics[${i}]`, source, ctx.now);
    }
  }
  return finish(d);
}
