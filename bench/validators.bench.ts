import { performance } from 'node:perf_hooks';
import { parseKeySpec } from '../src/auth/key-spec.js';
import { Scope, SCOPES } from '../src/auth/keys.js';
import { isObject, name, Problems } from '../src/common/input.js';
import { parseIsoTimestamp } from '../src/common/time.js';
import { RATE_CLASSES, RateClass } from '../src/config/config.js';
import { DecodeContext, decodeSubmission } from '../src/ingestion/decode.js';
import { ServiceReport } from '../src/openapi/schemas/control.js';
import { MetricsSubmission } from '../src/openapi/schemas/ingest.js';
import { decodeServiceReport } from '../src/service-status/service-status.js';

/**
 * The hand-written validators against the zod schemas that document the same bodies, in µs per
 * request (median of 7 rounds, after a warm-up), pure CPU, no HTTP:
 *  - ingest: decodeSubmission (validates and builds the point batch) against
 *    MetricsSubmission.safeParse (validates only: the batch would still have to be built);
 *  - control plane: the service status report, and the API key request: the hand validator it had
 *    (kept here to compare) against parseKeySpec, which now validates with the zod schema.
 *   make bench BENCH_ARGS=validators
 */
const now = Date.now();
const ctx: DecodeContext = {
  now,
  limits: {
    maxPoints: 20_000,
    maxTags: 64,
    maxNameLength: 200,
    maxTagKeyLength: 128,
    maxTagValueLength: 1024,
    maxFutureMs: 600_000,
    retentionDays: 7,
  },
};
const submission = (n: number) => ({
  source: 'fl_server',
  timestamp: new Date(now - 60_000).toISOString(),
  metrics: Array.from({ length: n }, (_, i) => ({
    name: `cpu_usage_${i % 10}`,
    value: i * 1.5,
    unit: 'percent',
    tags: { host: `web-${i % 7}`, region: 'eu' },
    timestamp: now - 60_000 + i,
  })),
});
const service = { name: 'api', status: 'up', endpoint: 'http://api:8080', ttl_seconds: 120, metadata: { v: '1.2' } };
const key = {
  name: 'collector-eu1',
  scopes: ['ingest'],
  expires_at: '2099-06-30T00:00:00Z',
  rate_limits: { ingest: 60000 },
};
const window = { now, retentionDays: 7, maxFutureMs: 600_000, retentionSetting: 'EVENTS_RETENTION_DAYS' };

/** The API key request's validator before it moved to its zod schema (src/auth/key-spec.ts), to compare. */
const FIELDS = new Set(['name', 'scopes', 'expires_at', 'rate_limits']);
function handKeySpec(body: unknown, now = Date.now()): unknown {
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

/** Its scopes check (it lived in src/auth/key-spec.ts while that validator was in use). */
function parseScopes(p: Problems, v: unknown, field = 'scopes'): Scope[] | undefined {
  if (!Array.isArray(v) || v.length === 0) return p.add(field, `must be a non-empty array of ${SCOPES.join(', ')}`);
  const out = new Set<Scope>();
  v.forEach((s, i) => {
    if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s))
      p.add(`${field}[${i}]`, `must be one of ${SCOPES.join(', ')}`);
    else out.add(s as Scope);
  });
  return [...out];
}

/** Median µs per call of `fn` over 7 rounds of `iterations` calls. */
function measure(fn: () => unknown, iterations: number): number {
  for (let i = 0; i < iterations; i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    rounds.push(((performance.now() - t0) * 1000) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return rounds[3];
}

const rows: Array<[string, number, number]> = [];
for (const n of [1, 100, 5000]) {
  const body = submission(n);
  const it = Math.max(20, Math.round(200_000 / n));
  rows.push([
    `ingest body, ${n} point${n === 1 ? '' : 's'}`,
    measure(() => decodeSubmission(body, ctx), it),
    measure(() => MetricsSubmission.safeParse(body), it),
  ]);
}
rows.push([
  'service status report',
  measure(() => decodeServiceReport(service, window), 100_000),
  measure(() => ServiceReport.safeParse(service), 100_000),
]);
rows.push([
  'API key request',
  measure(() => handKeySpec(key, now), 100_000),
  measure(() => parseKeySpec(key, now), 100_000),
]);
console.log('body                           hand µs/request   zod µs/request   zod/hand');
for (const [name, hand, zod] of rows)
  console.log(
    `${name.padEnd(30)} ${hand.toFixed(2).padStart(15)} ${zod.toFixed(2).padStart(16)} ${(zod / hand).toFixed(2).padStart(10)}`,
  );
