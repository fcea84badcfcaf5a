import { invalidQuery } from '../common/errors.js';
import { isCleanText, oneString } from '../common/input.js';
import { FilterShape, oversizedTagFilters } from '../common/tag-guard.js';
import {
  DAY,
  formatDuration,
  HOUR,
  isSupportedTime,
  MAX_TIME_MS,
  MIN_TIME_MS,
  MINUTE,
  parseDuration,
  parseQueryTime,
  queryTimeError,
  SECOND,
  toIso,
} from '../common/time.js';

/**
 * Query parameters → a validated QuerySpec. Pure. Every bad parameter is a 400 INVALID_QUERY that
 * names it; aggregation, fill and granularity come from closed sets and never reach SQL as text.
 */

export const AGGREGATIONS = ['avg', 'sum', 'min', 'max', 'count', 'first', 'last'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];
export const FILLS = ['none', 'null', 'zero', 'previous', 'linear'] as const;
export type Fill = (typeof FILLS)[number];

export interface TagFilter {
  key: string;
  /** Any of these values (a key given twice means OR). */
  values: string[];
}

export interface SeriesSelector {
  metric: string;
  source?: string;
  tags: TagFilter[];
}

export interface TimeRange {
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
}

export interface QuerySpec extends SeriesSelector, TimeRange {
  granularityMs: number;
  /** `5m`, as given or as chosen by `auto`. */
  granularity: string;
  aggregation: Aggregation;
  fill: Fill;
}

export interface QueryLimits {
  maxBuckets: number;
  autoBuckets: number;
}

/** Raw parameters as they arrive from a query string (strings, repeated keys as arrays) or a JSON body. */
export interface QueryInput {
  metric?: unknown;
  source?: unknown;
  from?: unknown;
  to?: unknown;
  granularity?: unknown;
  aggregation?: unknown;
  fill?: unknown;
  tags?: unknown;
  group_by?: unknown;
}

const DEFAULT_RANGE = HOUR;
/** Steps `auto` chooses from: the smallest that keeps the bucket count under QUERY_AUTO_BUCKETS. */
const NICE_STEPS = [1, 2, 5, 10, 15, 30]
  .map((s) => s * SECOND)
  .concat([1, 2, 5, 10, 15, 30].map((m) => m * MINUTE))
  .concat([1, 2, 3, 6, 12].map((h) => h * HOUR))
  .concat([1, 2, 7, 14, 30].map((d) => d * DAY));

/**
 * A text parameter that goes to SQL: NUL and lone surrogates are refused here with a 400 naming
 * it, as PostgreSQL would refuse them with an error that answers 500.
 */
export function checkText(value: string, name: string): string {
  if (!isCleanText(value)) throw invalidQuery(name, `${name} must be valid Unicode without NUL`);
  return value;
}

export function parseSelector(input: QueryInput, prefix = ''): SeriesSelector {
  const metric = oneString(input.metric, `${prefix}metric`);
  if (!metric) throw invalidQuery(`${prefix}metric`, `${prefix}metric is required`);
  const source =
    input.source === undefined || input.source === '' ? undefined : oneString(input.source, `${prefix}source`);
  if (input.source !== undefined && input.source !== '' && source === undefined)
    throw invalidQuery(`${prefix}source`, `${prefix}source must be a string`);
  checkText(metric, `${prefix}metric`);
  if (source !== undefined) checkText(source, `${prefix}source`);
  return { metric, source, tags: parseTags(input.tags, `${prefix}tags`) };
}

/** Tag filters one query may hold (values of all keys together): enough for any dashboard, bounded for the planner. */
export const MAX_TAG_FILTER_VALUES = 1_000;

const tooManyTagFilters = (name: string) =>
  invalidQuery(name, `${name} may hold at most ${MAX_TAG_FILTER_VALUES} key:value filters`);

/**
 * A guard for JSON bodies that carry tag filters (`multi`: `queries[i].tags`; `single`: `tags`),
 * run before they are parsed: a filter parseTags refuses for its size gets parseTags's own 400
 * from the bytes (common/tag-guard.ts), without JSON.parse building 100,000 strings first.
 */
export const tagFilterGuard =
  (shape: FilterShape) =>
  (body: Buffer): Error | undefined => {
    const field = oversizedTagFilters(body, shape, MAX_TAG_FILTER_VALUES);
    return field === undefined ? undefined : tooManyTagFilters(field);
  };

/** `tags=host:a&tags=region:eu` (repeatable; the value is what follows the first colon), or a JSON object `{"host": "a"}`. */
export function parseTags(v: unknown, name = 'tags'): TagFilter[] {
  if (v === undefined || v === null || v === '') return [];
  const pairs: Array<[string, string]> = [];
  const tooMany = () => tooManyTagFilters(name);
  if (typeof v === 'object' && !Array.isArray(v)) {
    let n = 0;
    for (const _k in v as Record<string, unknown>) if (++n > MAX_TAG_FILTER_VALUES) throw tooMany();
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      if (Array.isArray(val) && val.length > MAX_TAG_FILTER_VALUES) throw tooMany();
      if (typeof val === 'string') pairs.push([k, val]);
      else if (Array.isArray(val) && val.length > 0 && val.every((x) => typeof x === 'string'))
        for (const x of val) pairs.push([k, x as string]);
      else throw invalidQuery(name, `${name}.${k} must be a string or a non-empty array of strings`);
    }
  } else {
    if (Array.isArray(v) && v.length > MAX_TAG_FILTER_VALUES) throw tooMany();
    for (const item of Array.isArray(v) ? v : [v]) {
      const i = typeof item === 'string' ? item.indexOf(':') : -1;
      if (i <= 0) throw invalidQuery(name, `${name} must be key:value (got ${JSON.stringify(item)})`);
      pairs.push([(item as string).slice(0, i).trim(), (item as string).slice(i + 1)]);
    }
  }
  if (pairs.length > MAX_TAG_FILTER_VALUES) throw tooMany();
  const byKey = new Map<string, string[]>();
  for (const [k, val] of pairs) {
    if (!k) throw invalidQuery(name, `${name} has an empty key`);
    checkText(k, name);
    checkText(val, name);
    const values = byKey.get(k);
    if (values) values.push(val);
    else byKey.set(k, [val]);
  }
  return [...byKey].map(([key, values]) => ({ key, values: [...new Set(values)] }));
}

export function parseRange(input: { from?: unknown; to?: unknown }, now: number, prefix = ''): TimeRange {
  const parse = (name: 'from' | 'to') => {
    const raw = input[name];
    if (raw === undefined || raw === '') return undefined;
    const s = oneString(raw, `${prefix}${name}`) ?? (typeof raw === 'number' ? String(raw) : undefined);
    const t = s === undefined ? NaN : parseQueryTime(s, now);
    if (!isSupportedTime(t)) throw queryTimeError(`${prefix}${name}`, raw, s);
    return t;
  };
  let from = parse('from');
  let to = parse('to');
  // A default bound stays within the supported years: an hour before 0001-01-01T00:30Z is year 0.
  to ??= from !== undefined && from > now ? Math.min(from + DEFAULT_RANGE, MAX_TIME_MS - 1) : now;
  from ??= Math.max(to - DEFAULT_RANGE, MIN_TIME_MS);
  if (from > to) {
    throw invalidQuery(`${prefix}from`, 'Invalid time range', {
      issue: 'Start time must be before end time',
      from: toIso(from),
      to: toIso(to),
    });
  }
  return { from, to };
}

export function parseGranularity(
  v: unknown,
  range: TimeRange,
  limits: QueryLimits,
  name = 'granularity',
): { ms: number; label: string } {
  const s = v === undefined || v === null || v === '' ? 'auto' : (oneString(v, name) ?? String(v));
  // Buckets start on multiples of the step from the epoch, so a `from` between two of them adds
  // one: the buckets of [from, to) run from the one holding `from` to the one holding to - 1 µs.
  const buckets = (ms: number) => Math.max(Math.ceil(range.to / ms) - Math.floor(range.from / ms), 1);
  if (s === 'auto') {
    const cap = Math.min(limits.autoBuckets, limits.maxBuckets); // auto never exceeds QUERY_MAX_BUCKETS
    const want = Math.max(range.to - range.from, 1) / cap;
    let ms = NICE_STEPS.find((x) => x >= want && buckets(x) <= cap);
    if (ms === undefined) for (ms = Math.ceil(want / DAY) * DAY; buckets(ms) > cap;) ms += DAY;
    return { ms, label: formatDuration(ms) };
  }
  const ms = /^\d+[smhdw]$/.test(s) ? parseDuration(s) : NaN;
  if (!Number.isFinite(ms))
    throw invalidQuery(
      name,
      `${name} must be auto or a whole number of s, m, h, d or w (1m, 5m, 1h, 1d); got ${JSON.stringify(s)}`,
    );
  const n = buckets(ms);
  if (n > limits.maxBuckets) {
    throw invalidQuery(
      name,
      `${name} ${s} over this range gives ${n} buckets, more than ${limits.maxBuckets} (QUERY_MAX_BUCKETS); use a coarser granularity or auto`,
      {
        buckets: n,
        max_buckets: limits.maxBuckets,
      },
    );
  }
  return { ms, label: s };
}

export function parseEnum<T extends string>(v: unknown, allowed: readonly T[], name: string, fallback: T): T {
  if (v === undefined || v === '') return fallback;
  const s = oneString(v, name);
  if (s === undefined || !allowed.includes(s as T))
    throw invalidQuery(name, `${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  return s as T;
}

export function parseQuerySpec(input: QueryInput, now: number, limits: QueryLimits, prefix = ''): QuerySpec {
  const selector = parseSelector(input, prefix);
  const range = parseRange(input, now, prefix);
  const aggregation = parseEnum(input.aggregation, AGGREGATIONS, `${prefix}aggregation`, 'avg');
  const fill = parseEnum(input.fill, FILLS, `${prefix}fill`, 'none');
  const g = parseGranularity(input.granularity, range, limits, `${prefix}granularity`);
  return { ...selector, ...range, granularityMs: g.ms, granularity: g.label, aggregation, fill };
}

/** Keys one `group_by` may name. */
export const MAX_GROUP_BY_KEYS = 10;

/** The `group_by` name that means the series' source; any other name is a tag key. */
export const GROUP_BY_SOURCE = 'source';

/**
 * `group_by=source,host`: comma-separated names (also repeated, or a JSON array of names), each
 * trimmed; `source` is the series' source, any other name a tag key. Undefined when absent. An
 * empty name, a name given twice or more than MAX_GROUP_BY_KEYS names is a 400 naming it.
 */
export function parseGroupBy(v: unknown, name = 'group_by'): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw invalidQuery(name, `${name} must name at least one key (source or a tag key)`);
  const keys: string[] = [];
  for (const item of items) {
    if (typeof item !== 'string')
      throw invalidQuery(
        name,
        `${name} must be comma-separated names, such as source,host (got ${JSON.stringify(item)})`,
      );
    for (const part of item.split(',')) {
      const key = part.trim();
      if (!key) throw invalidQuery(name, `${name} has an empty name (got ${JSON.stringify(item)}); use source,host`);
      checkText(key, name);
      if (keys.includes(key)) throw invalidQuery(name, `${name} names ${JSON.stringify(key)} twice`, { key });
      keys.push(key);
      if (keys.length > MAX_GROUP_BY_KEYS)
        throw invalidQuery(name, `${name} may name at most ${MAX_GROUP_BY_KEYS} keys`, {
          max_keys: MAX_GROUP_BY_KEYS,
        });
    }
  }
  return keys;
}
