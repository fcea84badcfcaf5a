/** Retry policy: exponential backoff with full jitter, Retry-After honoured. Pure functions. */

export interface RetryOptions {
  /** Attempts in all, the first included (default 5; 1: never retry). */
  maxAttempts?: number;
  /** The cap of the first retry's delay; it doubles per attempt (default 200 ms). */
  baseDelayMs?: number;
  /** The largest cap (default 20 s). */
  maxDelayMs?: number;
  /**
   * A Retry-After longer than this is not waited for: the error is thrown instead (default 60 s).
   * The client never retries sooner than the service asked.
   */
  maxRetryAfterMs?: number;
}

export type ResolvedRetry = Required<RetryOptions>;

export const DEFAULT_RETRY: ResolvedRetry = {
  maxAttempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 20_000,
  maxRetryAfterMs: 60_000,
};

export function resolveRetry(o: RetryOptions | undefined): ResolvedRetry {
  const r = { ...DEFAULT_RETRY, ...stripUndefined(o ?? {}) };
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1)
    throw new RangeError(`retry.maxAttempts must be a whole number >= 1 (got ${r.maxAttempts})`);
  for (const k of ['baseDelayMs', 'maxDelayMs', 'maxRetryAfterMs'] as const)
    if (!(r[k] >= 0)) throw new RangeError(`retry.${k} must be >= 0 (got ${r[k]})`);
  return r;
}

/** Statuses worth another attempt: 429 (rate limited) and 503 (busy, ingest buffer full, shutting down). */
export const isRetryableStatus = (status: number) => status === 429 || status === 503;

/**
 * Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a delay drawn uniformly
 * from [0, min(maxDelay, base × 2^(retry − 1))), where `retry` counts the retries (1 before the
 * second attempt). `random` returns a number in [0, 1).
 */
export function backoffDelay(retry: number, policy: ResolvedRetry, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * cap);
}

/**
 * The wait a `Retry-After` header asks for, in ms: delay-seconds (`"5"`, also `"1.5"`) or an
 * HTTP-date. Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(header: string | null | undefined, now: number = Date.now()): number | undefined {
  if (header === null || header === undefined) return undefined;
  const s = header.trim();
  if (s === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/**
 * How long to wait before the next attempt after a retryable answer: what the service asked for
 * (Retry-After) when it asked, never less; else the jittered backoff. Undefined: do not retry
 * (the service asked for longer than `maxRetryAfterMs`).
 */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  policy: ResolvedRetry,
  random: () => number = Math.random,
): number | undefined {
  if (retryAfterMs === undefined) return backoffDelay(retry, policy, random);
  if (retryAfterMs > policy.maxRetryAfterMs) return undefined;
  // Clients told the same Retry-After would all come back at once: spread them over one base delay.
  return retryAfterMs + Math.floor(random() * policy.baseDelayMs);
}

/**
 * The wait before the `attempt`-th reconnect in a row of a stream (1 right after a drop): `base`
 * (what the server asked for with `retry:`) the first time, then base plus a full-jitter backoff
 * that doubles up to `maxDelayMs`, so that a service coming back is not hit by every client at once.
 */
export function reconnectDelay(
  attempt: number,
  baseMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  if (attempt <= 1) return baseMs;
  return baseMs + Math.floor(random() * Math.min(maxDelayMs, Math.max(1, baseMs) * 2 ** (attempt - 1)));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
