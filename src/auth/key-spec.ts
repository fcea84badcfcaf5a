import { z } from 'zod';
import { fieldErrors } from '../common/errors.js';
import { isCleanText, isObject } from '../common/input.js';
import { named } from '../openapi/registry.js';
import { zodProblems } from '../openapi/zod-problems.js';
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

const FIELDS = ['name', 'scopes', 'expires_at', 'rate_limits'] as const;
const SCOPE_LIST = `must be a non-empty array of ${SCOPES.join(', ')}`;
const RATE_LIST = `must be an object of requests per minute by class (${RATE_CLASSES.join(', ')}); 0 is unlimited`;

/**
 * The body of `POST /api/v1/auth/keys`: the one schema that validates it and documents it in the
 * OpenAPI document (component ApiKeyInput). Messages are those of the other hand validators.
 */
export const ApiKeyInput = named(
  'ApiKeyInput',
  z.strictObject(
    {
      name: z
        .string({ error: 'is required and must be a string' })
        .min(1, 'must not be empty')
        .max(100, 'must be at most 100 characters')
        .refine(isCleanText, 'must be valid Unicode without NUL characters')
        // eslint-disable-next-line no-control-regex
        .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters')
        .refine((s) => s.trim() === s, 'must not start or end with white space')
        .meta({ example: 'collector-eu1' }),
      scopes: z
        .array(z.enum(SCOPES, { error: `must be one of ${SCOPES.join(', ')}` }), { error: SCOPE_LIST })
        .min(1, SCOPE_LIST),
      expires_at: z
        .string({ error: 'must be an ISO 8601 date-time with a zone' })
        .refine((s) => !Number.isNaN(parseIsoTimestamp(s)), 'must be an ISO 8601 date-time with a zone')
        .nullable()
        .optional()
        .meta({ description: 'in the future; absent or null: never expires' }),
      rate_limits: z
        .record(z.string(), z.number({ error: 'must be a whole number of requests per minute, 0 for unlimited' }), {
          error: RATE_LIST,
        })
        .superRefine((limits, ctx) => {
          for (const [k, v] of Object.entries(limits))
            if (!(RATE_CLASSES as readonly string[]).includes(k))
              ctx.addIssue({
                code: 'custom',
                path: [k],
                message: `is not a rate-limit class (${RATE_CLASSES.join(', ')})`,
              });
            else if (!Number.isSafeInteger(v) || v < 0)
              ctx.addIssue({
                code: 'custom',
                path: [k],
                message: 'must be a whole number of requests per minute, 0 for unlimited',
              });
        })
        .nullable()
        .optional()
        .meta({ description: 'requests per minute by rate-limit class; 0 is unlimited', example: { ingest: 60000 } }),
    },
    { error: 'must be a JSON object {name, scopes, expires_at?, rate_limits?}' },
  ),
);

/** Validates a key request; every problem names its field (400). Pure. */
export function parseKeySpec(body: unknown, now = Date.now()): KeySpec {
  const r = ApiKeyInput.safeParse(body);
  // The one rule the schema cannot hold, as it depends on the time of the request.
  const expires = isObject(body) && typeof body.expires_at === 'string' ? parseIsoTimestamp(body.expires_at) : NaN;
  const late = expires <= now ? [{ field: 'expires_at', message: 'must be in the future' }] : [];
  if (!r.success || late.length) {
    const unknownKey = () => `is not a field of an API key (${FIELDS.join(', ')})`;
    throw fieldErrors(zodProblems(r.error, { unknownKey, order: FIELDS, extra: late }).slice(0, 20));
  }
  const expiresAt = Number.isNaN(expires) ? null : new Date(expires).toISOString();
  const b = r.data!;
  const rateLimits: Partial<Record<RateClass, number>> = {};
  for (const [k, v] of Object.entries(b.rate_limits ?? {})) rateLimits[k as RateClass] = v;
  return { name: b.name, scopes: [...new Set(b.scopes)], expiresAt, rateLimits };
}
