import { TimescopeApiError, TimescopeConnectionError } from './errors.js';
import { apiError, Transport } from './http.js';
import { isRetryableStatus, reconnectDelay, ResolvedRetry, retryDelay, sleep } from './retry.js';
import { SseMessage, SseParser } from './sse.js';
import type { StreamEvent, StreamOptions } from './types.js';

/** The service's default `retry:` (3 s), used until it sends its own. */
const DEFAULT_RECONNECT_MS = 3_000;

export interface StreamTuning {
  policy: ResolvedRetry;
  /** No byte (not even the 15 s keep-alive comment) for this long: the connection is taken as dead and reopened. */
  idleTimeoutMs: number;
  random?: () => number;
}

/**
 * `GET /api/v1/metrics/stream` as an async iterator. After a dropped connection it reconnects
 * with `Last-Event-ID`, and the service replays what committed meanwhile (or says `gap`). Ends
 * quietly when `return()` (a `break` out of `for await`), `close()` or the signal stops it.
 */
export class MetricStream implements AsyncIterableIterator<StreamEvent> {
  private readonly ctl = new AbortController();
  private readonly gen: AsyncGenerator<StreamEvent, void, undefined>;
  private readonly parser: SseParser;
  /**
   * The id of the last event handed to the caller. The parser runs ahead: it reads a whole chunk
   * (many events) before the first of them is yielded, and resuming from its id lost the rest.
   */
  private delivered: string | undefined;
  /** Connections opened so far (1 + reconnects). */
  connections = 0;

  constructor(
    private readonly transport: Transport,
    private readonly options: StreamOptions,
    private readonly tuning: StreamTuning,
  ) {
    this.parser = new SseParser(options.lastEventId);
    this.delivered = options.lastEventId;
    const outer = options.signal;
    if (outer?.aborted) this.ctl.abort(outer.reason);
    else outer?.addEventListener('abort', () => this.ctl.abort(outer.reason), { once: true });
    this.gen = this.run();
  }

  /** The id of the last event this stream gave its caller: where a new stream would resume. */
  get lastEventId(): string | undefined {
    return this.delivered;
  }

  next(): Promise<IteratorResult<StreamEvent, void>> {
    return this.gen.next();
  }

  /** Stops the stream: the connection is closed, a pending `next()` resolves done. */
  async return(): Promise<IteratorResult<StreamEvent, void>> {
    this.ctl.abort();
    return this.gen.return(undefined);
  }

  async close(): Promise<void> {
    await this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private url(): string {
    const o = this.options;
    const q = new URLSearchParams();
    if (o.metrics?.length) q.set('metrics', o.metrics.join(','));
    if (o.sources?.length) q.set('sources', o.sources.join(','));
    for (const [k, v] of Object.entries(o.tags ?? {}))
      for (const x of typeof v === 'string' ? [v] : v) q.append('tags', `${k}:${x}`);
    if (o.interval !== undefined) q.set('interval', String(o.interval));
    if (o.aggregation !== undefined) q.set('aggregation', o.aggregation);
    return this.transport.url('/api/v1/metrics/stream', q);
  }

  private async *run(): AsyncGenerator<StreamEvent, void, undefined> {
    const url = this.url();
    const label = 'GET /api/v1/metrics/stream';
    const { policy, random } = this.tuning;
    const maxFailures = this.options.maxReconnectAttempts ?? Infinity;
    let failures = 0; // attempts in a row without an established stream
    let dropped = false;
    const aborted = () => this.ctl.signal.aborted;
    try {
      for (;;) {
        if (dropped) {
          // After a drop: the server's retry (or ours), growing while reconnects keep failing.
          const base = this.options.reconnectDelayMs ?? this.parser.retryMs ?? DEFAULT_RECONNECT_MS;
          await sleep(reconnectDelay(failures + 1, base, policy.maxDelayMs, random), this.ctl.signal);
        }
        dropped = true;
        const conn = new AbortController();
        const onAbort = () => conn.abort();
        this.ctl.signal.addEventListener('abort', onAbort, { once: true });
        let idle: ReturnType<typeof setTimeout> | undefined;
        const arm = () => {
          clearTimeout(idle);
          idle = setTimeout(() => conn.abort(), this.tuning.idleTimeoutMs);
        };
        try {
          const headers = this.transport.headers({ accept: 'text/event-stream', 'cache-control': 'no-cache' });
          const last = this.parser.lastEventId;
          if (last) headers['last-event-id'] = last;
          arm();
          let res: Response;
          try {
            res = await this.transport.fetchFn(url, { headers, signal: conn.signal });
          } catch (err) {
            if (aborted()) return;
            if (++failures >= maxFailures)
              throw new TimescopeConnectionError(`${label}: ${(err as Error).message}`, label, { cause: err });
            continue;
          }
          if (!res.ok) {
            const err = apiError(res, await res.text().catch(() => ''), label);
            if (!isRetryableStatus(res.status) || ++failures >= maxFailures) throw err;
            const wait = retryDelay(failures, err.retryAfterMs, policy, random);
            if (wait === undefined) throw err;
            await sleep(wait, this.ctl.signal);
            dropped = false; // waited already
            continue;
          }
          failures = 0;
          this.connections++;
          this.parser.reset();
          const reader = (res.body as ReadableStream<Uint8Array>).getReader();
          const decoder = new TextDecoder();
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              // The connection spoke. While the caller holds an event, the clock stops: a slow
              // caller is not a silent connection (it was reopened for nothing).
              clearTimeout(idle);
              for (const m of this.parser.push(decoder.decode(value, { stream: true }))) {
                this.delivered = m.id;
                const e = toEvent(m);
                if (e) yield e;
              }
              this.delivered = this.parser.lastEventId; // also an id-only event at the chunk's end
              arm();
            }
          } catch (err) {
            if (aborted()) return;
            if (err instanceof TimescopeApiError) throw err;
            // The connection dropped (or went silent): reconnect.
          } finally {
            reader.cancel().catch(() => undefined);
          }
        } finally {
          clearTimeout(idle);
          this.ctl.signal.removeEventListener('abort', onAbort);
          conn.abort();
        }
      }
    } catch (err) {
      if (aborted()) return;
      throw err;
    }
  }
}

function toEvent(m: SseMessage): StreamEvent | undefined {
  let data: unknown;
  try {
    data = JSON.parse(m.data);
  } catch {
    return undefined; // not ours
  }
  switch (m.event) {
    case 'message':
      return { type: 'point', id: m.id, data } as StreamEvent;
    case 'gap':
    case 'skipped':
    case 'error':
      return { type: m.event, id: m.id, data } as StreamEvent;
    default:
      return undefined;
  }
}
