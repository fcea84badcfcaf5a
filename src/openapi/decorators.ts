import { applyDecorators } from '@nestjs/common';
import { ApiBody, ApiExtension, ApiResponse } from '@nestjs/swagger';
import type { z } from 'zod';
import { refOf } from './registry.js';

/**
 * Decorators that wire a route's zod schemas into the OpenAPI document. Controllers only declare
 * them; `finishDocument` (document.ts) adds the error envelope to every 4xx/5xx answer.
 */

/** The JSON request body, as the registered schema, with an example. */
export function JsonBody(
  schema: z.ZodType,
  opts: { example?: unknown; description?: string; required?: boolean } = {},
) {
  return ApiBody({
    schema: refOf(schema),
    required: opts.required ?? true,
    ...(opts.description ? { description: opts.description } : {}),
    ...(opts.example !== undefined ? { examples: { example: { summary: 'example', value: opts.example } } } : {}),
  });
}

/** A JSON answer. */
export function Answer(status: number, schema: z.ZodType, description = 'OK', example?: unknown) {
  return ApiResponse({
    status,
    description,
    schema: refOf(schema),
    ...(example !== undefined ? { example } : {}),
  });
}

/** An answer that is not JSON: text, CSV, Parquet, Server-Sent Events, protobuf. */
export function MediaAnswer(status: number, mediaTypes: string[], description: string, example?: string) {
  return ApiResponse({
    status,
    description,
    content: Object.fromEntries(
      mediaTypes.map((t) => [
        t,
        {
          schema: { type: 'string', ...(t.startsWith('text/') ? {} : { format: 'binary' }) },
          ...(example !== undefined ? { example } : {}),
        },
      ]),
    ),
  });
}

/** An answer without a body (204). */
export const NoContent = (description = 'Done') => ApiResponse({ status: 204, description });

/**
 * The route takes query parameters beyond those it declares (it forwards them, or a protocol's
 * clients may add their own): the unknown-parameter rule (unknown-query.ts) lets them through.
 */
export const OpenQuery = (why: string) => applyDecorators(ApiExtension('x-open-query', why));
