import { FieldProblem, fieldErrors, invalidQuery } from './errors.js';
import { epochToMs, parseIsoTimestamp } from './time.js';

/**
 * Small, pure helpers for validating control-plane JSON bodies (events, services, alerts):
 * every problem names its field, and nothing PostgreSQL would refuse (NUL, lone surrogates)
 * gets as far as SQL, where it would turn into a 500.
 */

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Well-formed UTF-16 (PostgreSQL cannot store lone surrogates) and no NUL. */
export function isCleanText(s: string): boolean {
  return !s.includes('\u0000') && (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Collects field problems; `fail()` throws the 400 naming every one. */
export class Problems {
  readonly list: FieldProblem[] = [];

  add(field: string, message: string): undefined {
    if (this.list.length < 20) this.list.push({ field, message });
    return undefined;
  }

  get any(): boolean {
    return this.list.length > 0;
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw fieldErrors(this.list);
  }
}

/** A required or optional string of at most `max` clean characters. */
export function text(
  p: Problems,
  v: unknown,
  field: string,
  opts: { max: number; required?: boolean; min?: number },
): string | undefined {
  if (v === undefined || v === null) {
    if (opts.required) p.add(field, 'is required and must be a string');
    return undefined;
  }
  if (typeof v !== 'string') return p.add(field, 'must be a string');
  if (v.length < (opts.min ?? (opts.required ? 1 : 0)))
    return p.add(field, opts.required ? 'must not be empty' : `must be at least ${opts.min} characters`);
  if (v.length > opts.max) return p.add(field, `must be at most ${opts.max} characters`);
  if (!isCleanText(v)) return p.add(field, 'must be valid Unicode without NUL characters');
  return v;
}

/** A name (service, source, rule): 1 to `max` characters, no control characters. */
export function name(p: Problems, v: unknown, field: string, max = 200, required = true): string | undefined {
  const s = text(p, v, field, { max, required });
  if (s === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) return p.add(field, 'must not contain control characters');
  if (s.trim() !== s) return p.add(field, 'must not start or end with white space');
  return s;
}

/**
 * A free-form JSON object (event attributes, metadata): at most `maxBytes` as JSON, nested at
 * most 16 deep, with keys and strings that PostgreSQL's jsonb accepts.
 */
export function jsonObject(p: Problems, v: unknown, field: string, maxBytes = 16_384): Json | undefined {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) return p.add(field, 'must be a JSON object');
  const bad = badJson(v, field, 0);
  if (bad) return p.add(bad.field, bad.message);
  const size = Buffer.byteLength(JSON.stringify(v));
  if (size > maxBytes) return p.add(field, `is ${size} bytes as JSON, more than ${maxBytes}`);
  return v;
}

function badJson(v: unknown, field: string, depth: number): FieldProblem | undefined {
  if (depth > 16) return { field, message: 'is nested more than 16 levels deep' };
  if (typeof v === 'string')
    return isCleanText(v) ? undefined : { field, message: 'must be valid Unicode without NUL characters' };
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : { field, message: 'must be a finite number' };
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const b = badJson(v[i], `${field}[${i}]`, depth + 1);
      if (b) return b;
    }
    return undefined;
  }
  if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (!isCleanText(k)) return { field, message: 'has a key that is not valid Unicode or holds NUL' };
      const b = badJson(x, `${field}.${k}`, depth + 1);
      if (b) return b;
    }
  }
  return undefined;
}

export interface TimeWindow {
  now: number;
  /** Older than this many days is refused (0: no limit). */
  retentionDays: number;
  maxFutureMs: number;
  retentionSetting: string;
}

/**
 * A timestamp in a body: ISO 8601 with a zone or epoch milliseconds; `undefined` → `now`.
 * Kept to whole milliseconds. Outside [now − retention, now + future window] is refused.
 */
export function timestamp(p: Problems, v: unknown, field: string, w: TimeWindow): number | undefined {
  let ms: number;
  if (v === undefined || v === null) return w.now;
  if (typeof v === 'string') ms = parseIsoTimestamp(v);
  else if (typeof v === 'number') {
    const r = epochToMs(v, undefined);
    if (typeof r === 'string') return p.add(field, r);
    ms = r;
  } else return p.add(field, 'must be an ISO 8601 date-time with a zone or epoch milliseconds');
  if (Number.isNaN(ms))
    return p.add(field, 'must be an ISO 8601 date-time with a zone (2024-01-15T10:30:00Z) or epoch milliseconds');
  if (ms > w.now + w.maxFutureMs)
    return p.add(field, `is more than ${w.maxFutureMs / 1000} s in the future (INGEST_MAX_FUTURE_SECONDS)`);
  if (w.retentionDays > 0 && ms < w.now - w.retentionDays * 86_400_000) {
    return p.add(field, `is older than the retention of ${w.retentionDays} days (${w.retentionSetting})`);
  }
  return Math.floor(ms);
}

/**
 * A parameter that takes one value: the string, or undefined when absent or not a string. A query
 * string's repeated key (`source=a&source=b`) is a 400 naming it: it once meant `a`, silently, where
 * a misspelt key is refused so that nothing a user wrote is ignored.
 */
export function oneString(v: unknown, name: string): string | undefined {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return undefined;
  if (v.length > 1) throw invalidQuery(name, `${name} takes one value, not ${v.length}`);
  return typeof v[0] === 'string' ? v[0] : undefined;
}

/** A bounded integer query parameter (`limit=50`), or the default when absent. */
export function intParam(v: unknown, name: string, def: number, min: number, max: number): number {
  if (v === undefined || v === '') return def;
  const s = Array.isArray(v) ? (oneString(v, name) ?? v[0]) : v;
  const n = typeof s === 'number' ? s : typeof s === 'string' && /^-?\d+$/.test(s.trim()) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw fieldErrors(
      [{ field: name, message: `must be an integer from ${min} to ${max} (got ${JSON.stringify(s)})` }],
      'INVALID_QUERY',
    );
  }
  return n;
}

/** A list query parameter: repeated (`kind=a&kind=b`) or comma-separated (`kind=a,b`); empty → undefined. */
export function listParam(v: unknown, name: string, max = 100): string[] | undefined {
  if (v === undefined || v === '') return undefined;
  const raw = Array.isArray(v) ? v : [v];
  const out: string[] = [];
  for (const item of raw) {
    if (typeof item !== 'string') throw fieldErrors([{ field: name, message: 'must be a string' }], 'INVALID_QUERY');
    for (const part of item.split(',')) {
      const s = part.trim();
      if (s) out.push(s);
    }
  }
  if (out.length > max) throw fieldErrors([{ field: name, message: `lists more than ${max} values` }], 'INVALID_QUERY');
  return out.length ? [...new Set(out)] : undefined;
}
