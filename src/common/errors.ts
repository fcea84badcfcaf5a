import { HttpException } from '@nestjs/common';

/** Error codes of the reference's error envelope (collector-api.md, "Error Handling"). */
export type ErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_QUERY'
  | 'RESOURCE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNPROCESSABLE_ENTITY'
  | 'RATE_LIMIT_EXCEEDED'
  | 'SERVICE_UNAVAILABLE'
  | 'QUERY_TIMEOUT'
  | 'INTERNAL_ERROR';

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
  retry_after?: number;
  timestamp: string;
}

/** An error that answers with the reference envelope `{"error": {...}}`. */
export class ApiError extends HttpException {
  constructor(
    status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Seconds; sets `retry_after` and the `Retry-After` header. */
    readonly retryAfter?: number,
  ) {
    super(message, status);
  }

  body(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, timestamp: new Date().toISOString() };
    if (this.details !== undefined) body.details = this.details;
    if (this.retryAfter !== undefined) body.retry_after = this.retryAfter;
    return body;
  }
}

/** One problem with one field of a request. `field` is a path such as `metrics[3].value`. */
export interface FieldProblem {
  field: string;
  message: string;
}

export const invalidRequest = (message: string, details?: Record<string, unknown>) =>
  new ApiError(400, 'INVALID_REQUEST', message, details);

export const invalidQuery = (parameter: string, message: string, extra?: Record<string, unknown>) =>
  new ApiError(400, 'INVALID_QUERY', message, { parameter, ...extra });

/** 400 naming every bad field; the message names the first. */
export function fieldErrors(problems: FieldProblem[], code: 'INVALID_REQUEST' | 'INVALID_QUERY' = 'INVALID_REQUEST') {
  const first = problems[0];
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new ApiError(400, code, `${first.field}: ${first.message}${more}`, {
    field: first.field,
    errors: problems,
  });
}

export const notFound = (what: string, details?: Record<string, unknown>) =>
  new ApiError(404, 'RESOURCE_NOT_FOUND', what, details);

export const payloadTooLarge = (message: string, details?: Record<string, unknown>) =>
  new ApiError(413, 'PAYLOAD_TOO_LARGE', message, details);

export const serviceUnavailable = (message: string, retryAfter = 5, details?: Record<string, unknown>) =>
  new ApiError(503, 'SERVICE_UNAVAILABLE', message, details, retryAfter);
