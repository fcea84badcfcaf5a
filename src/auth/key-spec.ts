import { isObject, name, Problems } from '../common/input.js';
import { parseIsoTimestamp } from '../common/time.js';
import { RATE_CLASSES, RateClass } from '../config/config.js';
import { Scope, SCOPES } from './keys.js';

/** A validated `POST /api/v1/auth/keys` body. */
export interface KeySpec {
  name: string;
  scopes: Scope[];
  expiresAt: string | null;
  rateLimits: Partial<Record<RateClass, number>>;
}

const FIELDS = new Set(['name', 'scopes', 'expires_at', 'rate_limits']);

/** Validates a key request; every problem names its field (400). Pure. */
export function parseKeySpec(body: unknown, now = Date.now()): KeySpec {
  const p = new Problems();
  if (!isObject(body)) {
    p.add('body', 'must be a JSON object {name, scopes, expires_at?, rate_limits?}');
    p.throwIfAny();
  }
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (!FIELDS.has(k)) p.add(k, `is not a field of an API key (${[...FIELDS].join(', ')})`);
  const keyName = name(p, b.name, 'name', 100);
  const scopes = parseScopes(p, b.scopes);
  let expiresAt: string | null = null;
  if (b.expires_at !== undefined && b.expires_at !== null) {
    const ms = typeof b.expires_at === 'string' ? parseIsoTimestamp(b.expires_at) : NaN;
    if (Number.isNaN(ms)) p.add('expires_at', 'must be an ISO 8601 date-time with a zone');
    else if (ms <= now) p.add('expires_at', 'must be in the future');
    else expiresAt = new Date(ms).toISOString();
  }
  const rateLimits: Partial<Record<RateClass, number>> = {};
  if (b.rate_limits !== undefined && b.rate_limits !== null) {
    if (!isObject(b.rate_limits))
      p.add(
        'rate_limits',
        `must be an object of requests per minute by class (${RATE_CLASSES.join(', ')}); 0 is unlimited`,
      );
    else
      for (const [k, v] of Object.entries(b.rate_limits)) {
        if (!(RATE_CLASSES as readonly string[]).includes(k))
          p.add(`rate_limits.${k}`, `is not a rate-limit class (${RATE_CLASSES.join(', ')})`);
        else if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
          p.add(`rate_limits.${k}`, 'must be a whole number of requests per minute, 0 for unlimited');
        else rateLimits[k as RateClass] = v;
      }
  }
  p.throwIfAny();
  return { name: keyName!, scopes: scopes!, expiresAt, rateLimits };
}

export function parseScopes(p: Problems, v: unknown, field = 'scopes'): Scope[] | undefined {
  if (!Array.isArray(v) || v.length === 0) return p.add(field, `must be a non-empty array of ${SCOPES.join(', ')}`);
  const out = new Set<Scope>();
  v.forEach((s, i) => {
    if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s))
      p.add(`${field}[${i}]`, `must be one of ${SCOPES.join(', ')}`);
    else out.add(s as Scope);
  });
  return [...out];
}
