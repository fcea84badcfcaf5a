import type { WritePoint } from './types.js';

/** The error envelope every Timescope error answers with: `{"error": {code, message, details, timestamp}}`. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
  /** Seconds, on 429 RATE_LIMIT_EXCEEDED and 503 SERVICE_UNAVAILABLE (also sent as `Retry-After`). */
  retry_after?: number;
  /** 429: the limit and its window, as the reference shows them. */
  limit?: number;
  window?: string;
  timestamp?: string;
}

/** Base class of the errors this client throws. */
export class TimescopeError extends Error {
  override name = 'TimescopeError';
}

/**
 * The service answered with an error status. `code`, `message` and `details` are the envelope's
 * (`INVALID_QUERY`, `details.parameter`: the field at fault); `retryAfterMs` is the wait the
 * service asked for (Retry-After), if any.
 */
export class TimescopeApiError extends TimescopeError {
  override name = 'TimescopeApiError';
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly retryAfterMs: number | undefined,
    /** The method and path of the request, for messages and logs. */
    readonly request: string,
  ) {
    super(`${request}: ${status} ${body.code}: ${body.message}`);
    this.code = body.code;
    this.details = body.details;
  }
}

/** The request never got an answer (connection refused or reset, DNS, timeout), after every attempt. */
export class TimescopeConnectionError extends TimescopeError {
  override name = 'TimescopeConnectionError';
  constructor(
    message: string,
    readonly request: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A point the writer refused before sending it (bad name, value, source or timestamp). */
export class TimescopeValidationError extends TimescopeError {
  override name = 'TimescopeValidationError';
  constructor(
    message: string,
    /** The field at fault: `name`, `value`, `source`, `tags`, `timestamp`. */
    readonly field: string,
  ) {
    super(message);
  }
}

/** Batches the writer could not deliver since the last flush: each error with the points it held. */
export class TimescopeWriteError extends TimescopeError {
  override name = 'TimescopeWriteError';
  constructor(readonly failures: ReadonlyArray<{ error: Error; points: readonly WritePoint[] }>) {
    const points = failures.reduce((n, f) => n + f.points.length, 0);
    super(`${failures.length} batch(es) with ${points} point(s) not written; first: ${failures[0]?.error.message}`, {
      cause: failures[0]?.error,
    });
  }

  /** The points not written, in the order they were written (to write them again, or log them). */
  get points(): WritePoint[] {
    return this.failures.flatMap((f) => f.points);
  }
}
