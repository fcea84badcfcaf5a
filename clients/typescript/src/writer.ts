import { TimescopeValidationError, TimescopeWriteError } from './errors.js';
import type { IngestReply, WritePoint } from './types.js';

export interface WriterOptions {
  /** The source of points that name none. */
  source?: string;
  /** Points per request (default 5,000; the service takes up to 20,000). */
  batchSize?: number;
  /** JSON bytes per request (default 3 MiB; the service takes up to 10 MiB). */
  maxBatchBytes?: number;
  /** A point waits at most this long before its batch is sent (default 1,000 ms). */
  flushIntervalMs?: number;
  /** `write()` waits while more points than this are buffered or in flight (default 100,000). */
  maxBufferedPoints?: number;
  /** Requests in flight at once (default 1: batches are committed in the order they were cut). */
  concurrency?: number;
  /** Told of each batch that could not be written (after its retries); `flush()` and `close()` reject with them too. */
  onError?: (error: Error, points: readonly WritePoint[]) => void;
}

/** What the writer has done so far. */
export interface WriterStats {
  /** Points waiting for their batch to be cut. */
  buffered: number;
  /** Points in batches sent or waiting to be sent, not yet answered. */
  inFlight: number;
  /** Points the service acknowledged (committed). */
  written: number;
  /** Points of batches that failed for good. */
  failed: number;
  /** Requests sent, retries excluded, and batches acknowledged. */
  batches: number;
}

/** Sends one batch body; resolves after the service committed it (retries are the sender's business). */
export type BatchSender = (body: string, points: number) => Promise<IngestReply>;

interface Entry {
  point: WritePoint;
  source: string;
  /** The point's JSON in the ingest body, without its source. */
  json: string;
  bytes: number;
}

interface Batch {
  entries: Entry[];
}

const DEFAULTS = {
  batchSize: 5_000,
  maxBatchBytes: 3 * 1024 * 1024,
  flushIntervalMs: 1_000,
  maxBufferedPoints: 100_000,
  concurrency: 1,
};

/** Bytes of `{"batches":[]}` and, per source, of `{"source":…,"metrics":[]},`. */
const BODY_OVERHEAD = 16;
const SOURCE_OVERHEAD = 30;

/**
 * Buffers points and sends them as `POST /api/v1/metrics/batch` bodies when `batchSize` points or
 * `maxBatchBytes` of JSON have gathered, or `flushIntervalMs` after the oldest buffered point.
 *
 * Retries are safe: every point carries its timestamp (stamped at `write()` when it has none), and
 * the service stores one point per series and timestamp (last write wins), so a batch sent twice,
 * whether the first attempt was lost or only its answer, leaves the same points.
 */
export class PointWriter {
  private readonly o: Required<Omit<WriterOptions, 'source' | 'onError'>> & Pick<WriterOptions, 'source' | 'onError'>;
  private buffer: Entry[] = [];
  private bufferBytes = 0;
  private readonly queue: Batch[] = [];
  private queuedPoints = 0;
  private sending = 0;
  private sendingPoints = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private failures: Array<{ error: Error; points: WritePoint[] }> = [];
  private readonly roomWaiters: Array<() => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private readonly counts = { written: 0, failed: 0, batches: 0 };

  constructor(
    private readonly send: BatchSender,
    options: WriterOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    for (const k of ['batchSize', 'maxBatchBytes', 'maxBufferedPoints', 'concurrency'] as const)
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new RangeError(`${k} must be a whole number >= 1 (got ${o[k]})`);
    if (!(o.flushIntervalMs >= 0)) throw new RangeError(`flushIntervalMs must be >= 0 (got ${o.flushIntervalMs})`);
    this.o = o;
  }

  /** Points buffered or in flight. */
  get pending(): number {
    return this.buffer.length + this.queuedPoints + this.sendingPoints;
  }

  get stats(): WriterStats {
    return {
      buffered: this.buffer.length,
      inFlight: this.queuedPoints + this.sendingPoints,
      ...this.counts,
    };
  }

  /**
   * Buffers the points (checked first: a bad point rejects the call and nothing of it is buffered).
   * Resolves at once while at most `maxBufferedPoints` are buffered or in flight, else once the
   * service has answered enough of them. It does not wait for these points' commit: `flush()` does.
   */
  write(points: WritePoint | readonly WritePoint[]): Promise<void> {
    if (this.closed) return Promise.reject(new TimescopeValidationError('the writer is closed', 'writer'));
    const list = Array.isArray(points) ? points : [points as WritePoint];
    let entries: Entry[];
    try {
      const stamp = this.now();
      entries = list.map((p, i) => toEntry(p, this.o.source, stamp, list.length > 1 ? `[${i}].` : ''));
    } catch (err) {
      return Promise.reject(err);
    }
    for (const e of entries) {
      if (
        this.buffer.length > 0 &&
        (this.buffer.length >= this.o.batchSize || this.bufferBytes + e.bytes > this.o.maxBatchBytes)
      )
        this.cut();
      this.buffer.push(e);
      this.bufferBytes += e.bytes;
    }
    if (this.buffer.length >= this.o.batchSize || this.bufferBytes >= this.o.maxBatchBytes) this.cut();
    if (this.buffer.length > 0 && this.timer === undefined)
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.cut();
      }, this.o.flushIntervalMs);
    this.pump();
    if (this.pending <= this.o.maxBufferedPoints) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /**
   * Sends everything buffered and resolves once every point written so far is committed; rejects
   * with a TimescopeWriteError naming the batches that failed since the last flush.
   */
  async flush(): Promise<void> {
    this.cut();
    this.pump();
    if (this.pending > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.failures.length > 0) {
      const failures = this.failures;
      this.failures = [];
      throw new TimescopeWriteError(failures);
    }
  }

  /** Flushes, then refuses further writes. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /** Moves the buffer into batches of at most batchSize points and maxBatchBytes. */
  private cut(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    let batch: Entry[] = [];
    let bytes = BODY_OVERHEAD;
    const sources = new Set<string>();
    const push = () => {
      if (batch.length === 0) return;
      this.queue.push({ entries: batch });
      this.queuedPoints += batch.length;
      batch = [];
      bytes = BODY_OVERHEAD;
      sources.clear();
    };
    for (const e of this.buffer) {
      const extra = e.bytes + (sources.has(e.source) ? 0 : SOURCE_OVERHEAD + utf8Length(e.source));
      if (batch.length >= this.o.batchSize || (batch.length > 0 && bytes + extra > this.o.maxBatchBytes)) push();
      batch.push(e);
      bytes += e.bytes + (sources.has(e.source) ? 0 : SOURCE_OVERHEAD + utf8Length(e.source));
      sources.add(e.source);
    }
    push();
    this.buffer = [];
    this.bufferBytes = 0;
    this.pump();
  }

  private pump(): void {
    while (this.sending < this.o.concurrency && this.queue.length > 0) {
      const batch = this.queue.shift()!;
      const n = batch.entries.length;
      this.queuedPoints -= n;
      this.sending++;
      this.sendingPoints += n;
      this.counts.batches++;
      this.send(batchBody(batch.entries), n).then(
        () => {
          this.counts.written += n;
          this.settle(n);
        },
        (err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          const points = batch.entries.map((e) => e.point);
          this.counts.failed += n;
          this.failures.push({ error, points });
          try {
            this.o.onError?.(error, points);
          } finally {
            this.settle(n);
          }
        },
      );
    }
  }

  private settle(n: number): void {
    this.sending--;
    this.sendingPoints -= n;
    this.pump();
    if (this.pending <= this.o.maxBufferedPoints) for (const w of this.roomWaiters.splice(0)) w();
    if (this.queuedPoints + this.sendingPoints === 0 && this.buffer.length === 0)
      for (const w of this.idleWaiters.splice(0)) w();
  }
}

function toEntry(p: WritePoint, defaultSource: string | undefined, stamp: number, at: string): Entry {
  if (p === null || typeof p !== 'object') throw new TimescopeValidationError(`${at}point must be an object`, 'point');
  if (typeof p.name !== 'string' || p.name === '')
    throw new TimescopeValidationError(`${at}name must be a non-empty string`, 'name');
  if (typeof p.value !== 'number' || !Number.isFinite(p.value))
    throw new TimescopeValidationError(`${at}value must be a finite number (got ${String(p.value)})`, 'value');
  const source = p.source ?? defaultSource;
  if (typeof source !== 'string' || source === '')
    throw new TimescopeValidationError(`${at}source: give the point a source, or the writer a default one`, 'source');
  if (p.tags !== undefined && (p.tags === null || typeof p.tags !== 'object' || Array.isArray(p.tags)))
    throw new TimescopeValidationError(`${at}tags must be an object of strings`, 'tags');
  if (p.tags) {
    for (const [k, v] of Object.entries(p.tags))
      if (typeof v !== 'string') throw new TimescopeValidationError(`${at}tags.${k} must be a string`, 'tags');
  }
  const timestamp = wireTime(p.timestamp ?? stamp, at);
  const m: Record<string, unknown> = { name: p.name, value: p.value, timestamp };
  if (p.unit !== undefined) m.unit = p.unit;
  if (p.tags !== undefined && Object.keys(p.tags).length > 0) m.tags = p.tags;
  const json = JSON.stringify(m);
  return {
    point: p.timestamp === undefined ? { ...p, timestamp: stamp } : p,
    source,
    json,
    bytes: utf8Length(json) + 1,
  };
}

/**
 * The body of one `POST /api/v1/metrics/batch` holding these points (checked and stamped as
 * `PointWriter.write` does), for a single request without a writer.
 */
export function encodeBatch(points: readonly WritePoint[], source?: string, now: number = Date.now()): string {
  return batchBody(points.map((p, i) => toEntry(p, source, now, points.length > 1 ? `[${i}].` : '')));
}

/** `{"batches":[{"source":…,"metrics":[…]}, …]}`, one submission per source, points in order within each. */
function batchBody(entries: readonly Entry[]): string {
  const bySource = new Map<string, string[]>();
  for (const e of entries) {
    const list = bySource.get(e.source);
    if (list) list.push(e.json);
    else bySource.set(e.source, [e.json]);
  }
  const parts: string[] = [];
  for (const [source, list] of bySource)
    parts.push(`{"source":${JSON.stringify(source)},"metrics":[${list.join(',')}]}`);
  return `{"batches":[${parts.join(',')}]}`;
}

/** A timestamp as the service reads it: epoch ms (numbers, Dates) or the string as given (ISO 8601, microseconds kept). */
function wireTime(t: Date | string | number, at: string): number | string {
  if (t instanceof Date) {
    const ms = t.getTime();
    if (Number.isNaN(ms)) throw new TimescopeValidationError(`${at}timestamp is an invalid Date`, 'timestamp');
    return ms;
  }
  if (typeof t === 'number') {
    if (!Number.isFinite(t)) throw new TimescopeValidationError(`${at}timestamp must be finite`, 'timestamp');
    return t;
  }
  if (typeof t === 'string' && t !== '') return t;
  throw new TimescopeValidationError(`${at}timestamp must be a Date, an ISO 8601 string or epoch ms`, 'timestamp');
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) n += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return n;
}
