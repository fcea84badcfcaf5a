import type { OpenAPIObject } from '@nestjs/swagger';
import { componentSchemas } from './registry.js';
import './schemas/common.js';

type Operation = {
  security?: Array<Record<string, string[]>>;
  responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
  requestBody?: unknown;
  parameters?: Array<{ in: string; name: string; schema?: { type?: string; items?: { type?: string } } }>;
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

const ERROR_DESCRIPTIONS: Record<string, string> = {
  '400': 'INVALID_REQUEST or INVALID_QUERY, naming the field or parameter (details.field, details.parameter)',
  '401': 'UNAUTHORIZED: no key, or an unknown, revoked or expired key',
  '403': 'FORBIDDEN: the key lacks the scope of the route',
  '404': 'RESOURCE_NOT_FOUND',
  '413': 'PAYLOAD_TOO_LARGE',
  '415': 'UNSUPPORTED_MEDIA_TYPE',
  '429': 'RATE_LIMIT_EXCEEDED, with Retry-After',
  '503': 'SERVICE_UNAVAILABLE, with Retry-After (the database is unreachable, or the write queue is full)',
};

const envelope = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } };

/** Every operation of the document, with its path and method. */
export function operations(doc: OpenAPIObject): Array<{ path: string; method: string; op: Operation }> {
  const out: Array<{ path: string; method: string; op: Operation }> = [];
  for (const [path, item] of Object.entries(doc.paths ?? {}))
    for (const method of METHODS) {
      const op = (item as Record<string, Operation | undefined>)[method];
      if (op) out.push({ path, method, op });
    }
  return out;
}

/**
 * Completes the document Nest builds from the decorators: the zod components, the error envelope
 * on every 4xx/5xx answer (and 400 and 503 on every route, 404 on routes with path parameters,
 * 413/415 on routes with a body), and `security: []` on the public routes, so that a client
 * generator knows which calls go without a key.
 */
export function finishDocument(doc: OpenAPIObject): OpenAPIObject {
  doc.components ??= {};
  doc.components.schemas = { ...(doc.components.schemas ?? {}), ...componentSchemas() } as NonNullable<
    OpenAPIObject['components']
  >['schemas'];
  for (const { path, op } of operations(doc)) {
    op.security ??= [];
    binaryBodies(op);
    typedParameters(op);
    const responses = (op.responses ??= {});
    const wanted = ['400', '503'];
    if (path.includes('{')) wanted.push('404');
    if (op.requestBody) wanted.push('413', '415');
    for (const code of wanted) responses[code] ??= { description: ERROR_DESCRIPTIONS[code] };
    for (const [code, r] of Object.entries(responses)) {
      if (!/^[45]/.test(code)) continue;
      r.description ||= ERROR_DESCRIPTIONS[code] ?? 'Error';
      r.content ??= envelope;
    }
  }
  return doc;
}

/** Nest gives every media type of a body the same schema: the JSON one. The others are bytes (or text). */
function binaryBodies(op: Operation): void {
  const content = (op.requestBody as { content?: Record<string, { schema?: unknown }> } | undefined)?.content;
  if (!content) return;
  for (const [type, media] of Object.entries(content)) {
    if (type === 'application/json') continue;
    if (type.startsWith('text/') && (media.schema as { type?: string } | undefined)?.type === 'string') continue;
    media.schema = type.startsWith('text/') ? { type: 'string' } : { type: 'string', format: 'binary' };
  }
}

/** `@ApiQuery` without a type documents a schema `{}` (any); query and path parameters are text. */
function typedParameters(op: Operation): void {
  for (const p of op.parameters ?? []) {
    const schema = (p.schema ??= {});
    if (schema.type === undefined && !('enum' in schema) && !('$ref' in schema)) schema.type = 'string';
    if (schema.type === 'array' && (schema.items === undefined || schema.items.type === undefined))
      schema.items = { type: 'string' };
  }
}
