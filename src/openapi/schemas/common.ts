import { z } from 'zod';
import { named } from '../registry.js';

/** Pieces shared by many routes' schemas. */

export const Timestamp = named(
  'Timestamp',
  z.union([z.string(), z.number()]).meta({
    description: 'ISO 8601 with a zone (2024-01-15T10:30:00Z) or epoch milliseconds',
    example: '2024-01-15T10:30:00Z',
  }),
);

/** A time in a query: also `now` and `now-<N><s|m|h|d|w>`. */
export const QueryTime = named(
  'QueryTime',
  z.union([z.string(), z.number()]).meta({
    description: 'ISO 8601 with a zone, epoch milliseconds, now or now-<N><s|m|h|d|w>',
    example: 'now-1h',
  }),
);

export const Tags = named(
  'Tags',
  z.record(z.string(), z.string()).meta({ description: 'Tag key → value', example: { host: 'web-1' } }),
);

/** Tag filters in a body: an object, or `key:value` strings (the same key twice means either value). */
export const TagFilter = named(
  'TagFilter',
  z.union([z.record(z.string(), z.union([z.string(), z.array(z.string())])), z.array(z.string())]).meta({
    description: 'An object {key: value | [values]} or a list of key:value',
    example: { host: 'web-1' },
  }),
);

/** The series and range fields that the query, multi-query and anomaly bodies share. */
export const SeriesRange = {
  metric: z.string().meta({ example: 'cpu_usage' }),
  source: z.string().optional(),
  tags: TagFilter.optional(),
  from: QueryTime.optional(),
  to: QueryTime.optional(),
};

export const IsoTime = z.string().meta({ description: 'ISO 8601, UTC', example: '2024-01-15T10:30:00.000Z' });

export const Aggregation = named('Aggregation', z.enum(['avg', 'sum', 'min', 'max', 'count', 'first', 'last']));
export const Fill = named('Fill', z.enum(['none', 'null', 'zero', 'previous', 'linear']));

/** Free-form JSON object (attributes, metadata, details). */
export const JsonObject = named('JsonObject', z.record(z.string(), z.unknown()));

export const ErrorBody = named(
  'ErrorBody',
  z.looseObject({
    code: z.enum([
      'INVALID_REQUEST',
      'INVALID_QUERY',
      'RESOURCE_NOT_FOUND',
      'METHOD_NOT_ALLOWED',
      'UNAUTHORIZED',
      'FORBIDDEN',
      'CONFLICT',
      'PAYLOAD_TOO_LARGE',
      'UNSUPPORTED_MEDIA_TYPE',
      'UNPROCESSABLE_ENTITY',
      'RATE_LIMIT_EXCEEDED',
      'SERVICE_UNAVAILABLE',
      'QUERY_TIMEOUT',
      'INTERNAL_ERROR',
    ]),
    message: z.string(),
    details: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'parameter or field: what was wrong; errors: every problem [{field, message}]' }),
    retry_after: z.number().optional().meta({ description: 'Seconds, as the Retry-After header (429, 503)' }),
    timestamp: z.string(),
  }),
);

/** The reference's error envelope (collector-api.md, "Error Handling"): every 4xx and 5xx answer. */
export const ErrorEnvelope = named(
  'ErrorEnvelope',
  z.object({ error: ErrorBody }).meta({
    example: {
      error: {
        code: 'INVALID_QUERY',
        message: 'unknown query parameter "metirc" (known: metric, source, from, to, …)',
        details: { parameter: 'metirc' },
        timestamp: '2026-11-22T10:30:00.000Z',
      },
    },
  }),
);

/** `{status: "ok"}`-like answers and others whose every field is not listed. */
export const AnyObject = named('AnyObject', z.looseObject({}));
