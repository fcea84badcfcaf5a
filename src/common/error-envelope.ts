import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError, ErrorCode } from './errors.js';
import { FORBIDDEN_KEY_MESSAGE, forbiddenKeyError } from './json-body.js';

const statusCodes: Record<number, ErrorCode> = {
  400: 'INVALID_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'RESOURCE_NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE_ENTITY',
  429: 'RATE_LIMIT_EXCEEDED',
  503: 'SERVICE_UNAVAILABLE',
  504: 'QUERY_TIMEOUT',
};

/** PostgreSQL SQLSTATEs and socket errors that mean "the database is not reachable right now". */
const UNAVAILABLE_PG = /^(08|57P0[1-3]|53300)/;
const UNAVAILABLE_SOCKET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);

export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && (UNAVAILABLE_PG.test(e.code) || UNAVAILABLE_SOCKET.has(e.code))) return true;
  const msg = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/.test(
    msg,
  );
}

/** Turns any thrown value into the reference envelope. Used by the Nest filter and fastify's error handler. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  // Nest wraps fastify's own 4xx errors (body parsing, limits, media types) in an HttpException.
  if (err instanceof HttpException && typeof (err.cause as { statusCode?: unknown })?.statusCode === 'number')
    return toApiError(err.cause);
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const res = err.getResponse();
    const message =
      typeof res === 'object' && res && 'message' in res
        ? String(
            Array.isArray((res as { message: unknown }).message)
              ? (res as { message: string[] }).message.join('; ')
              : (res as { message: unknown }).message,
          )
        : err.message;
    return new ApiError(status, statusCodes[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'INVALID_REQUEST'), message);
  }
  const e = err as { statusCode?: number; code?: string; message?: string; name?: string };
  // fastify's own errors (body parsing, limits, media type) carry statusCode and an FST_ code.
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return new ApiError(413, 'PAYLOAD_TOO_LARGE', 'Request body is larger than the limit', {
        limit: 'INGEST_MAX_BODY_BYTES',
      });
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', e.message ?? 'Unsupported media type');
    // secure-json-parse's refusal of a __proto__ or constructor.prototype key: the JSON is valid.
    if (e.name === 'SyntaxError' && e.message === FORBIDDEN_KEY_MESSAGE) return forbiddenKeyError();
    if (e.name === 'SyntaxError' || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
      return new ApiError(400, 'INVALID_REQUEST', `Malformed JSON body: ${e.message}`);
    if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new ApiError(400, 'INVALID_REQUEST', 'Empty JSON body');
    return new ApiError(e.statusCode, statusCodes[e.statusCode] ?? 'INVALID_REQUEST', e.message ?? 'Bad request');
  }
  if (e?.code === '57014')
    return new ApiError(
      504,
      'QUERY_TIMEOUT',
      'The query ran past the statement timeout; narrow the range or use a coarser granularity',
    );
  if (e?.code === '22003')
    // PostgreSQL's float8 arithmetic refuses to overflow: a sum (or, for a standard deviation, a
    // sum of squares) of these values is beyond a double's range (±1.8e308).
    return new ApiError(
      422,
      'UNPROCESSABLE_ENTITY',
      'The values in this range are too large to aggregate: the result would be beyond a double (±1.8e308); ask for min, max, first or last, or a narrower range',
    );
  if (isDatabaseUnavailable(err))
    return new ApiError(503, 'SERVICE_UNAVAILABLE', 'The database is unreachable; retry later', undefined, 5);
  return new ApiError(500, 'INTERNAL_ERROR', 'Internal error');
}

/** The code each request answered with an error carried (set by sendError), for the self-metrics' errors by code. */
const answeredCodes = new WeakMap<object, ErrorCode>();

/** The envelope code a request was answered with; from its HTTP status when the answer did not come from sendError. */
export function errorCodeOf(request: object, status: number): string {
  return answeredCodes.get(request) ?? statusCodes[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : `HTTP_${status}`);
}

export function sendError(reply: FastifyReply, err: unknown, logger: Logger): void {
  const apiError = toApiError(err);
  const status = apiError.getStatus();
  answeredCodes.set(reply.request, apiError.code);
  if (status >= 500 && apiError.code === 'INTERNAL_ERROR')
    logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  if (apiError.retryAfter !== undefined) reply.header('Retry-After', String(apiError.retryAfter));
  reply.status(status).header('Content-Type', 'application/json; charset=utf-8').send({ error: apiError.body() });
}

@Catch()
export class ErrorEnvelopeFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (reply.sent) return;
    sendError(reply, exception, this.logger);
  }
}
