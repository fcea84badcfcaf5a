import { ErrorBody, TimescopeApiError, TimescopeConnectionError } from './errors.js';
import { isRetryableStatus, parseRetryAfter, ResolvedRetry, retryDelay, sleep } from './retry.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Told before each retry: for logs and metrics. */
export interface RetryEvent {
  request: string;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  delayMs: number;
  error: Error;
}

export interface TransportOptions {
  baseUrl: string;
  apiKey?: string;
  headers?: Record<string, string>;
  fetch?: FetchLike;
  retry: ResolvedRetry;
  /** Per attempt; 0: none. */
  timeoutMs: number;
  onRetry?: (e: RetryEvent) => void;
  random?: () => number;
}

export interface RequestOptions {
  query?: URLSearchParams;
  /** JSON, sent as application/json: text, or bytes (gzip-compressed JSON with `content-encoding: gzip`). */
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * `http://host:8080`, `http://host:8080/` and `http://host:8080/api/v1` (the reference's base URL)
 * all name the service root.
 */
export function serviceRoot(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
}

/** HTTP with retries: 429, 503 and network failures are retried with backoff; other errors throw at once. */
export class Transport {
  readonly root: string;
  readonly fetchFn: FetchLike;

  constructor(private readonly o: TransportOptions) {
    this.root = serviceRoot(o.baseUrl);
    this.fetchFn = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  headers(extra?: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...this.o.headers, ...extra };
    if (this.o.apiKey) h.authorization = `Bearer ${this.o.apiKey}`;
    return h;
  }

  url(path: string, query?: URLSearchParams): string {
    const q = query?.toString();
    return `${this.root}${path}${q ? `?${q}` : ''}`;
  }

  /** The parsed JSON answer (undefined for 204). */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const label = `${method} ${path}`;
    const url = this.url(path, opts.query);
    const headers = this.headers(
      opts.body !== undefined ? { 'content-type': 'application/json', ...opts.headers } : opts.headers,
    );
    const policy = this.o.retry;
    for (let attempt = 1; ; attempt++) {
      let failure: Error;
      let retryAfterMs: number | undefined;
      const { signal, done } = attemptSignal(opts.signal, this.o.timeoutMs);
      try {
        const res = await this.fetchFn(url, { method, headers, body: opts.body as RequestInit['body'], signal });
        const text = await res.text();
        if (res.ok) return (text === '' ? undefined : JSON.parse(text)) as T;
        const err = apiError(res, text, label);
        if (!isRetryableStatus(res.status)) throw err;
        failure = err;
        retryAfterMs = err.retryAfterMs;
      } catch (err) {
        if (err instanceof TimescopeApiError) throw err;
        if (opts.signal?.aborted) throw opts.signal.reason;
        if (err instanceof SyntaxError)
          throw new TimescopeConnectionError(`${label}: the answer is not JSON`, label, { cause: err });
        // fetch's TypeError (refused, reset, DNS), a body cut short, or this attempt's timeout.
        failure = new TimescopeConnectionError(`${label}: ${describe(err)}`, label, { cause: err });
      } finally {
        done();
      }
      if (attempt >= policy.maxAttempts) throw failure;
      const delayMs = retryDelay(attempt, retryAfterMs, policy, this.o.random);
      if (delayMs === undefined) throw failure;
      this.o.onRetry?.({ request: label, attempt, delayMs, error: failure });
      await sleep(delayMs, opts.signal);
    }
  }
}

/** The error of a non-2xx answer, from its envelope (or a stand-in when the body is not one). */
export function apiError(res: Response, text: string, label: string): TimescopeApiError {
  let body: ErrorBody | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (parsed && typeof parsed.error === 'object' && parsed.error !== null) body = parsed.error as ErrorBody;
  } catch {
    /* not JSON: a proxy's page */
  }
  body ??= { code: `HTTP_${res.status}`, message: text.slice(0, 200) || res.statusText };
  const retryAfterMs =
    parseRetryAfter(res.headers.get('retry-after')) ??
    (typeof body.retry_after === 'number' ? body.retry_after * 1000 : undefined);
  return new TimescopeApiError(res.status, body, retryAfterMs, label);
}

/** The caller's signal combined with this attempt's timeout. */
function attemptSignal(outer: AbortSignal | undefined, timeoutMs: number): { signal?: AbortSignal; done: () => void } {
  if (timeoutMs <= 0) return { signal: outer, done: () => undefined };
  const ctl = new AbortController();
  const timer = setTimeout(
    () => ctl.abort(new TimescopeConnectionError(`no answer within ${timeoutMs} ms`, '')),
    timeoutMs,
  );
  const onAbort = () => ctl.abort(outer!.reason);
  if (outer?.aborted) ctl.abort(outer.reason);
  else outer?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ctl.signal,
    done: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
    },
  };
}

/** gzip of a text, with the platform's CompressionStream (Node.js >= 18, current browsers). */
export async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? `: ${(cause as { code?: string }).code ?? cause.message}` : '';
  return `${err.message}${detail}`;
}
