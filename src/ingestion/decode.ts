import { FieldProblem, fieldErrors, invalidRequest, payloadTooLarge } from '../common/errors.js';
import { isCleanText, isObject, Json } from '../common/input.js';
import { DAY, epochToMs, isSupportedTime, parseIsoTimestamp, Precision } from '../common/time.js';
import { CanonicalSeries, canonicalTags, PointBatch, PointBatchBuilder, seriesKey } from '../storage/point-batch.js';

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
  /** Series already validated, shared across requests (see KnownSeriesIndex). */
  known?: KnownSeriesIndex;
}

/**
 * A series seen in an earlier request, validated and canonicalised. `batch`/`idx` remember its
 * index in the batch being decoded, so one lookup per point finds both (decoding is synchronous:
 * no two decodes interleave).
 */
export interface KnownSeries extends CanonicalSeries {
  batch: number;
  idx: number;
}

/** A validated series, not yet placed in any batch. */
export function knownSeries(metric: string, source: string, tags: Record<string, string> | undefined): KnownSeries {
  const c = canonicalTags(tags);
  return {
    key: seriesKey(metric, source, c.tagsKey),
    metric,
    source,
    tags: c.tags,
    tagsKey: c.tagsKey,
    refs: undefined,
    batch: 0,
    idx: 0,
  };
}

interface TrieNode {
  known?: KnownSeries;
  next?: Map<string, Map<string, TrieNode>>;
}

/**
 * Known series by name, source and tags exactly as sent (a trie of maps). JSON.parse interns short
 * strings, so walking the trie costs a few hash-cached map lookups per point, about a quarter of
 * hashing one concatenated key. Bounded: past `capacity` nodes it starts afresh.
 */
export class KnownSeriesIndex {
  private root = new Map<string, Map<string, TrieNode>>();
  private nodes = 0;

  constructor(readonly capacity: number) {}

  /** The node for a name and source; `child` then walks the tags. */
  start(name: string, source: string): TrieNode {
    let bySource = this.root.get(name);
    if (bySource === undefined) {
      this.grow();
      this.root.set(name, (bySource = new Map()));
    }
    let node = bySource.get(source);
    if (node === undefined) {
      this.grow();
      bySource.set(source, (node = {}));
    }
    return node;
  }

  child(node: TrieNode, key: string, value: string): TrieNode {
    let byValue = node.next?.get(key);
    if (byValue === undefined) {
      this.grow();
      (node.next ??= new Map()).set(key, (byValue = new Map()));
    }
    let next = byValue.get(value);
    if (next === undefined) {
      this.grow();
      byValue.set(value, (next = {}));
    }
    return next;
  }

  private grow(): void {
    if (++this.nodes > this.capacity) {
      this.root = new Map();
      this.nodes = 0;
    }
  }
}

let batchCounter = 0;

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
const TAG_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const RESERVED_TAG_KEYS = new Set(['constructor', 'prototype']);
export const MAX_UNIT_LENGTH = 64;
export const MAX_PROBLEMS = 20;

/*
 * The rules on names, tags, sources and times, shared by every ingest decoder (JSON here, line
 * protocol in line-protocol.ts), so that a series or a time refused by one is refused by all.
 */

/** Why a metric name is refused; undefined when valid. */
export function nameProblem(name: string, l: IngestLimits): string | undefined {
  if (name.length > l.maxNameLength) return `is longer than ${l.maxNameLength} characters`;
  if (name.length === 0 || !NAME.test(name) || name.startsWith('__')) {
    return 'must start with a letter or _ and hold only letters, digits, _ . : - (names starting with __ are reserved)';
  }
  return undefined;
}

/** Why a tag key is refused; undefined when valid. Checked before the key is used as a property name. */
export function tagKeyProblem(k: string, l: IngestLimits): string | undefined {
  if (k.length > l.maxTagKeyLength) return `has a key longer than ${l.maxTagKeyLength} characters`;
  if (!TAG_KEY.test(k) || k.startsWith('__') || RESERVED_TAG_KEYS.has(k)) {
    return `key ${JSON.stringify(k.slice(0, 64))} must start with a letter or _ and hold only letters, digits, _ . - (__*, constructor and prototype are reserved)`;
  }
  return undefined;
}

/** Why a tag value is refused; undefined when valid. */
export function tagValueProblem(v: string, l: IngestLimits): string | undefined {
  if (v.length === 0 || v.length > l.maxTagValueLength || !isCleanText(v))
    return `must be 1 to ${l.maxTagValueLength} characters of valid Unicode without NUL`;
  return undefined;
}

/** Why a source is refused; undefined when valid. */
export function sourceProblem(v: string, l: IngestLimits): string | undefined {
  if (v.length === 0) return 'is required and must be a non-empty string';
  if (v.length > l.maxNameLength || !isCleanText(v))
    return `must be at most ${l.maxNameLength} characters of valid Unicode without control characters`;
  return undefined;
}

/** The accepted window of point times for a request: [now − retention, now + INGEST_MAX_FUTURE_SECONDS]. */
export function timeWindow(ctx: Pick<DecodeContext, 'now' | 'limits'>): { min: number; max: number } {
  const l = ctx.limits;
  return { min: l.retentionDays > 0 ? ctx.now - l.retentionDays * DAY : -Infinity, max: ctx.now + l.maxFutureMs };
}

/** Why a point time (epoch ms) is refused; undefined when it lies in the window. */
export function timeProblem(ms: number, window: { min: number; max: number }, l: IngestLimits): string | undefined {
  if (ms > window.max) return `is more than ${l.maxFutureMs / 1000} s in the future (INGEST_MAX_FUTURE_SECONDS)`;
  if (ms < window.min) return `is older than the retention of ${l.retentionDays} days (METRICS_RETENTION_DAYS)`;
  if (!isSupportedTime(ms)) return 'is outside the supported years 0001 to 9999';
  return undefined;
}

/**
 * The largest magnitude of a stored value. Every rollup sums a series' values per bucket (plain
 * PostgreSQL's tables, TimescaleDB's continuous aggregates), and PostgreSQL raises an error when a
 * float8 sum overflows: one bucket of values near the largest double stopped the rollup refresh
 * for every series. A day's bucket of one series holds at most 8.64e10 points (one a microsecond),
 * so values up to 1e296 in magnitude can never make it overflow (8.64e10 × 1e296 < 1.8e308).
 */
export const MAX_ABS_VALUE = 1e296;

/** Whether a number can be stored as a point's value: finite and within ±MAX_ABS_VALUE (false for NaN). */
export const isStorableValue = (v: number): boolean => Math.abs(v) <= MAX_ABS_VALUE;

/** Exact powers of ten (10^22 is the largest a double holds exactly). */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
const TWO_53 = 2 ** 53;

/**
 * `mant` × 10^`e10`, correctly rounded as parsing the decimal text gives it, where one operation
 * can give it: `mant` (digits summed one by one) below 2^53, so every step of the sum was exact,
 * and 10^|e10| exact. Otherwise undefined: parse the text. Digits that reach 2^53 sum to 2^53 or
 * more however they round, so a rounded mantissa never passes. Values printed at full precision
 * (16 digits) are mostly below 2^53. The body scanners' fast path for numbers (JSON, line protocol).
 */
export function exactDecimal(mant: number, e10: number): number | undefined {
  if (!(mant < TWO_53) || e10 < -22 || e10 > 22) return undefined;
  return mant === 0 ? 0 : e10 < 0 ? mant / POW10[-e10] : mant * POW10[e10];
}

/** Why a number cannot be stored as a point's value, or undefined when it can. */
export function valueProblem(v: number): string | undefined {
  if (isStorableValue(v)) return undefined;
  return Number.isFinite(v)
    ? `must be at most ${MAX_ABS_VALUE} in magnitude (rollups sum values)`
    : 'must be a finite number';
}

/** The problem of a point's tags past INGEST_MAX_TAGS (here, in collect.ts and in the ingest guard's refusals). */
export const tooManyTagsMessage = (maxTags: number) => `has more than ${maxTags} tags (INGEST_MAX_TAGS)`;

/** 413 when a request holds more points than INGEST_MAX_POINTS_PER_REQUEST. */
export function tooManyPoints(n: number, limits: IngestLimits) {
  return payloadTooLarge(
    `Too many points in one request: ${n} > ${limits.maxPoints} (INGEST_MAX_POINTS_PER_REQUEST); split the request`,
    {
      points: n,
      limit: limits.maxPoints,
    },
  );
}

class Decoder {
  readonly builder: PointBatchBuilder;
  readonly problems: FieldProblem[] = [];
  private readonly known: KnownSeriesIndex;
  private readonly batch = ++batchCounter;
  private lastTsText = '';
  private lastUnit: unknown = undefined;
  private lastTsMs = NaN;
  private readonly window: { min: number; max: number };

  constructor(
    private readonly ctx: DecodeContext,
    capacity: number,
  ) {
    this.builder = new PointBatchBuilder(capacity);
    this.known = ctx.known ?? new KnownSeriesIndex(Math.max(64, capacity * 8));
    this.window = timeWindow(ctx);
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
    let batchTime = this.ctx.now;
    if (body.timestamp !== undefined && body.timestamp !== null) {
      const t = this.time(body.timestamp);
      if (typeof t === 'string') this.problem(`${path}timestamp`, t);
      else batchTime = t;
    }
    const metrics = body.metrics;
    if (!Array.isArray(metrics)) {
      this.problem(`${path}metrics`, 'must be an array of {name, value, unit?, tags?, timestamp?}');
      return;
    }
    if (source === undefined || this.problems.length > 0) return;
    for (let i = 0; i < metrics.length && !this.full; i++)
      this.point(metrics[i], `${path}metrics`, i, source, batchTime);
  }

  /** `{service, metric_type, value, unit?, tags?, timestamp?}` (system-monitor-integration.md "Metrics Reporting"). */
  simple(body: Json, path: string): void {
    const source = this.source(body.service, `${path}service`);
    if (source === undefined) return;
    this.point(
      { name: body.metric_type, value: body.value, unit: body.unit, tags: body.tags, timestamp: body.timestamp },
      path.replace(/\.$/, ''),
      -1,
      source,
      this.ctx.now,
      'metric_type',
    );
  }

  /** Names a field of point `index` (-1: a single point at `prefix`) for an error message. */
  private field(prefix: string, index: number, f: string): string {
    const at = index < 0 ? prefix : `${prefix}[${index}]`;
    return f === '' ? at : at === '' ? f : `${at}.${f}`;
  }

  /** One point. `prefix` and `index` name it in errors; the strings are built only then. */
  point(m: unknown, prefix: string, index: number, source: string, defaultTime: number, nameField = 'name'): void {
    if (!isObject(m)) {
      this.problem(this.field(prefix, index, ''), 'must be an object {name, value, unit?, tags?, timestamp?}');
      return;
    }
    const name = m.name;
    const value = m.value;
    const tags = m.tags;
    if (typeof name !== 'string') {
      this.problem(this.field(prefix, index, nameField), 'is required and must be a string');
      return;
    }
    const badValue =
      typeof value === 'number' ? valueProblem(value) : 'is required and must be a number (strings are not converted)';
    if (badValue !== undefined) {
      this.problem(this.field(prefix, index, 'value'), badValue);
      return;
    }
    const ts = m.timestamp;
    let time = defaultTime;
    if (ts !== undefined && ts !== null) {
      const t = this.time(ts);
      if (typeof t === 'string') {
        this.problem(this.field(prefix, index, 'timestamp'), t);
        return;
      }
      time = t;
    }

    // Find the series as sent; one validated in any earlier request is not validated again.
    let node = this.known.start(name, source);
    if (tags !== undefined && tags !== null) {
      if (!isObject(tags)) {
        this.problem(this.field(prefix, index, 'tags'), 'must be an object of string values');
        return;
      }
      let count = 0;
      for (const k in tags) {
        // Checked before walking the series trie: a point with 100,000 tags costs 65 steps, not 100,000 nodes.
        if (++count > this.ctx.limits.maxTags) {
          this.problem(this.field(prefix, index, 'tags'), tooManyTagsMessage(this.ctx.limits.maxTags));
          return;
        }
        const v = tags[k];
        if (typeof v !== 'string') {
          this.problem(this.field(prefix, index, `tags.${k}`), 'must be a string');
          return;
        }
        node = this.known.child(node, k, v);
      }
    }
    let known = node.known;
    if (known === undefined) {
      const problem = this.seriesProblem(name, tags as Record<string, string> | undefined | null, nameField);
      if (problem) {
        this.problem(this.field(prefix, index, problem[0]), problem[1]);
        return;
      }
      known = node.known = knownSeries(name, source, (tags as Record<string, string> | null) ?? undefined);
    }
    if (known.batch !== this.batch) {
      known.batch = this.batch;
      known.idx = this.builder.addCanonical(known);
    }
    const unit = m.unit;
    if (unit !== undefined && unit !== null) {
      if (unit !== this.lastUnit) {
        if (typeof unit !== 'string' || unit.length > MAX_UNIT_LENGTH || !isCleanText(unit)) {
          this.problem(this.field(prefix, index, 'unit'), `must be a string of at most ${MAX_UNIT_LENGTH} characters`);
          return;
        }
        this.lastUnit = unit; // most points of a request repeat one unit
      }
      this.builder.setUnit(known.idx, unit as string);
    }
    this.builder.push(known.idx, time, value as number); // checked above (valueProblem)
  }

  source(v: unknown, field: string): string | undefined {
    const problem =
      typeof v === 'string' ? sourceProblem(v, this.ctx.limits) : 'is required and must be a non-empty string';
    if (problem) {
      this.problem(field, problem);
      return undefined;
    }
    return v as string;
  }

  /** Epoch ms, or why the value is not an acceptable timestamp. */
  time(v: unknown): number | string {
    let ms: number;
    if (typeof v === 'string') {
      if (v === this.lastTsText)
        ms = this.lastTsMs; // points of one scrape share their timestamp
      else {
        ms = parseIsoTimestamp(v);
        this.lastTsText = v;
        this.lastTsMs = ms;
      }
      if (Number.isNaN(ms))
        return 'must be an ISO 8601 date-time with a zone (2024-01-15T10:30:00Z) or epoch milliseconds';
    } else if (typeof v === 'number') {
      const r = epochToMs(v, this.ctx.precision);
      if (typeof r === 'string') return r;
      ms = r;
    } else {
      return 'must be an ISO 8601 string or epoch milliseconds';
    }
    return timeProblem(ms, this.window, this.ctx.limits) ?? ms;
  }

  /** Why a new series is refused, as [field relative to the point, message]; undefined when valid. */
  private seriesProblem(
    name: string,
    tags: Record<string, string> | undefined | null,
    nameField: string,
  ): [string, string] | undefined {
    const l = this.ctx.limits;
    const bad = nameProblem(name, l);
    if (bad) return [nameField, bad];
    if (!tags) return undefined;
    let count = 0;
    for (const k in tags) {
      if (++count > l.maxTags) return ['tags', tooManyTagsMessage(l.maxTags)];
      const badKey = tagKeyProblem(k, l);
      if (badKey) return ['tags', badKey];
      const badValue = tagValueProblem(tags[k], l);
      if (badValue) return [`tags.${k}`, badValue];
    }
    return undefined;
  }
}

function finish(d: Decoder): PointBatch {
  if (d.problems.length > 0) throw fieldErrors(d.problems);
  return d.builder.build();
}

function countPoints(n: number, limits: IngestLimits): void {
  if (n > limits.maxPoints) throw tooManyPoints(n, limits);
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
        else if (m.tags === undefined || m.tags === null || isObject(m.tags))
          m.tags = { ...(m.tags ?? {}), profileId: m.profileId };
      }
      d.point(m, 'metrics', i, source, ctx.now);
    }
  }
  return finish(d);
}
