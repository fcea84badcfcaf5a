import { DAY } from '../common/time.js';
import type { PointBatch } from '../storage/point-batch.js';
import { SampleBuffer } from './sample-buffer.js';
import type { GpuSample, HostSample, Sampler } from './samples.js';
import { SamplerUnavailable } from './samples.js';
import { gpuPoints, hostPoints, PointRow } from './to-points.js';

/** Timers, injectable so that tests drive the cadence with fake time. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface CollectorSettings {
  host: string;
  liveMs: number;
  persistMs: number;
  bufferMaxPoints: number;
  retentionDays: number;
}

export interface SamplerState {
  name: string;
  available: boolean;
  /** Why it is unavailable or what went wrong last; null when the last poll was fine. */
  reason: string | null;
  last_sample_at: string | null;
  last_duration_ms: number | null;
  samples: number;
  failures: number;
  timeouts: number;
  /** Polls skipped because the previous one of this sampler had not finished. */
  overlaps_skipped: number;
  next_attempt_at: string | null;
}

interface Slot<T> {
  sampler: Sampler<T>;
  toRows: (s: T, host: string) => PointRow[];
  latest?: T;
  inFlight: boolean;
  retryAt: number;
  state: SamplerState;
}

/** Rows per write: a long outage is persisted in several transactions, each released once committed. */
const PERSIST_CHUNK = 20_000;
/** The longest a poll may run, whatever the interval: a sampler slower than this is hung. */
const MAX_POLL_MS = 30_000;

/**
 * The collector's engine, free of NestJS: every live interval each sampler is polled (never
 * overlapping itself, cut off at 80% of the interval), the readings go to the live cache and to a
 * bounded buffer; every persist interval `persist` is asked to write what was gathered. The host
 * sampler never waits for the GPU sampler: each has its own poll.
 */
export class Collector {
  private readonly host: Slot<HostSample>;
  private readonly gpu: Slot<GpuSample>;
  readonly buffer: SampleBuffer;
  private liveTimer: unknown;
  private persistTimer: unknown;
  private nextLiveAt = 0;
  private running = false;
  private cadenceState: { startedAt: number; cadenceFrom: number } | null = null;
  private persisting?: Promise<unknown>;
  private readonly sampleListeners = new Set<(host: HostSample, gpu: GpuSample | undefined) => void>();
  stats = {
    polls: 0,
    ticks_late: 0,
    persists: 0,
    persist_failures: 0,
    points_persisted: 0,
    points_expired: 0,
    /** Points the writer refused for good (a 4xx, such as the series limit): dropped, not retried. */
    points_refused: 0,
    last_persist_at: null as string | null,
    last_persist_error: null as string | null,
  };

  constructor(
    samplers: { host: Sampler<HostSample>; gpu: Sampler<GpuSample> },
    private settings: CollectorSettings,
    /** Asks for a persist (in the service: the `collector-persist` job, which calls persistWith). */
    private readonly onPersistDue: () => Promise<unknown>,
    private readonly clock: Clock = realClock,
  ) {
    this.host = slot(samplers.host, hostPoints);
    this.gpu = slot(samplers.gpu, gpuPoints);
    this.buffer = new SampleBuffer(settings.bufferMaxPoints);
  }

  get isRunning(): boolean {
    return this.running;
  }

  get latestHost(): HostSample | undefined {
    return this.host.latest;
  }

  get latestGpu(): GpuSample | undefined {
    return this.gpu.latest;
  }

  /** When sampling started and when the current live interval took effect; null while stopped. */
  get cadence(): { startedAt: number; cadenceFrom: number } | null {
    return this.cadenceState;
  }

  samplerStates(): SamplerState[] {
    return [this.host.state, this.gpu.state];
  }

  /** Starts both cadences; the first poll comes after `firstPollMs` (time for a first CPU delta). */
  start(firstPollMs = 1_000): void {
    if (this.running) return;
    this.running = true;
    this.cadenceState = { startedAt: this.clock.now(), cadenceFrom: this.clock.now() };
    this.nextLiveAt = this.clock.now() + Math.min(firstPollMs, this.settings.liveMs);
    this.armLive();
    this.armPersist();
  }

  stop(): void {
    this.running = false;
    this.cadenceState = null;
    this.clock.clearTimeout(this.liveTimer);
    this.clock.clearTimeout(this.persistTimer);
  }

  /** New intervals or bounds take effect now: the timers are re-armed from the current time. */
  update(settings: CollectorSettings): void {
    const old = this.settings;
    this.settings = settings;
    if (settings.bufferMaxPoints !== old.bufferMaxPoints) this.buffer.resize(settings.bufferMaxPoints);
    if (!this.running) return;
    if (settings.liveMs !== old.liveMs) {
      if (this.cadenceState) this.cadenceState.cadenceFrom = this.clock.now();
      this.nextLiveAt = this.clock.now() + settings.liveMs;
      this.armLive();
    }
    if (settings.persistMs !== old.persistMs) this.armPersist();
  }

  /** One poll of every sampler that is not still busy; resolves when each has answered or been cut off. */
  async pollOnce(): Promise<void> {
    this.stats.polls++;
    const deadline = Math.min(Math.floor(this.settings.liveMs * 0.8), MAX_POLL_MS);
    const before = this.host.latest;
    await Promise.all([this.poll(this.host, deadline), this.poll(this.gpu, deadline)]);
    const sample = this.host.latest;
    if (sample && sample !== before)
      for (const listener of this.sampleListeners) {
        try {
          listener(sample, this.gpu.latest);
        } catch {
          /* a listener's fault is its own: sampling goes on */
        }
      }
  }

  /** Calls `listener` with each new host sample (and the latest GPU one) as it is taken; returns the unsubscribe. */
  onSample(listener: (host: HostSample, gpu: GpuSample | undefined) => void): () => void {
    this.sampleListeners.add(listener);
    return () => this.sampleListeners.delete(listener);
  }

  /**
   * Writes what is buffered, oldest first, in chunks; each chunk is released once committed, so a
   * failure (the database is down) keeps the rest for the next persist. A chunk the writer refuses
   * for good (a 4xx other than 429, such as the series limit) is dropped and counted: written
   * again it would be refused again, and everything after it would wait for ever. Never two at once.
   */
  persistWith(write: (batch: PointBatch) => Promise<void>): Promise<Record<string, unknown>> {
    if (this.persisting) return this.persisting as Promise<Record<string, unknown>>;
    const run = this.persistNow(write).finally(() => (this.persisting = undefined));
    this.persisting = run;
    return run;
  }

  private async persistNow(write: (batch: PointBatch) => Promise<void>): Promise<Record<string, unknown>> {
    let points = 0,
      transactions = 0,
      expired = 0,
      refused = 0,
      refusal: string | null = null;
    const minTime = this.settings.retentionDays > 0 ? this.clock.now() - this.settings.retentionDays * DAY : -Infinity;
    try {
      while (this.buffer.size > 0) {
        const { batch, upTo, expired: e } = this.buffer.take(this.settings.host, PERSIST_CHUNK, minTime);
        let stored = batch.length;
        try {
          if (batch.length > 0) await write(batch);
        } catch (err) {
          if (!refusedForGood(err)) throw err;
          stored = 0;
          refused += batch.length;
          this.stats.points_refused += batch.length;
          refusal = `${batch.length} point(s) refused and dropped: ${(err as Error).message}`;
        }
        this.buffer.release(upTo);
        points += stored;
        expired += e;
        transactions++;
      }
      this.stats.last_persist_error = refusal;
    } catch (err) {
      this.stats.persist_failures++;
      this.stats.last_persist_error = (err as Error)?.message ?? String(err);
      throw new Error(
        `${this.stats.last_persist_error} (${this.buffer.size} point(s) kept for the next persist, ${points} written)`,
        { cause: err },
      );
    } finally {
      this.stats.persists++;
      this.stats.points_persisted += points;
      this.stats.points_expired += expired;
      if (points > 0 || transactions > 0) this.stats.last_persist_at = new Date(this.clock.now()).toISOString();
    }
    return { points, transactions, expired, refused, pending: this.buffer.size, dropped_total: this.buffer.dropped };
  }

  private armLive(): void {
    this.clock.clearTimeout(this.liveTimer);
    if (!this.running) return;
    this.liveTimer = this.clock.setTimeout(() => this.onLiveTick(), Math.max(0, this.nextLiveAt - this.clock.now()));
  }

  private onLiveTick(): void {
    if (!this.running) return;
    // Fixed rate: the next poll is due one interval after this one was due, not after it ended.
    const now = this.clock.now();
    this.nextLiveAt += this.settings.liveMs;
    if (this.nextLiveAt <= now) {
      this.stats.ticks_late++; // the process was stalled for a whole interval: skip, do not catch up
      this.nextLiveAt = now + this.settings.liveMs;
    }
    this.armLive();
    void this.pollOnce();
  }

  private armPersist(): void {
    this.clock.clearTimeout(this.persistTimer);
    if (!this.running) return;
    this.persistTimer = this.clock.setTimeout(() => {
      // Re-armed only once this persist has finished: a slow database never stacks persists up.
      void this.onPersistDue()
        .catch(() => undefined)
        .finally(() => this.armPersist());
    }, this.settings.persistMs);
  }

  private async poll<T>(s: Slot<T>, deadline: number): Promise<void> {
    const now = this.clock.now();
    if (s.inFlight) {
      s.state.overlaps_skipped++;
      return;
    }
    if (now < s.retryAt) return;
    s.inFlight = true;
    const abort = new AbortController();
    let timer: unknown;
    const cutoff = new Promise<never>((_, reject) => {
      timer = this.clock.setTimeout(() => {
        // Rejected before the abort: a sampler that rejects at once on abort must still count as a timeout.
        reject(new PollTimeout(`${s.sampler.name} sampler gave no answer within ${deadline} ms`));
        abort.abort();
      }, deadline);
    });
    const attempt = s.sampler.sample(abort.signal);
    // The slot stays busy until the sampler itself has settled, even after the cut-off: polls never overlap.
    attempt.then(
      () => (s.inFlight = false),
      () => (s.inFlight = false),
    );
    try {
      const reading = await Promise.race([attempt, cutoff]);
      s.latest = reading;
      s.state.available = true;
      s.state.reason = (reading as { problem?: string }).problem ?? null;
      s.state.samples++;
      s.state.last_sample_at = new Date(now).toISOString();
      s.state.last_duration_ms = this.clock.now() - now;
      s.state.next_attempt_at = null;
      this.buffer.add(s.toRows(reading, this.settings.host), (reading as { time: number }).time ?? now);
    } catch (err) {
      if (err instanceof SamplerUnavailable) {
        s.state.available = false;
        s.latest = undefined;
        s.retryAt = now + err.retryAfterMs;
        s.state.next_attempt_at = err.retryAfterMs > 0 ? new Date(s.retryAt).toISOString() : null;
      } else {
        s.state.failures++;
        if (err instanceof PollTimeout) s.state.timeouts++;
      }
      s.state.reason = (err as Error)?.message ?? String(err);
    } finally {
      this.clock.clearTimeout(timer);
    }
  }
}

class PollTimeout extends Error {}

export type CollectorStatus = 'disabled' | 'starting' | 'running' | 'stalled' | 'persist_failing';

export interface CollectorHealthInput {
  enabled: boolean;
  /** The collector's `cadence`: null while it is not sampling. */
  cadence: { startedAt: number; cadenceFrom: number } | null;
  /** When the last host sample was taken, null before the first. */
  lastSampleAt: number | null;
  liveMs: number;
  persistFailing: boolean;
  now: number;
}

/** Missed polls before sampling counts as stalled, plus slack for a slow poll. */
const STALLED_AFTER_INTERVALS = 3;
const STALLED_SLACK_MS = 2_000;

/**
 * The collector's line in GET /health. `starting` until the first sample after a start (a fresh
 * process is not stalled); `stalled` when no sample came for 3 live intervals + 2 s, counted from
 * the last sample or from the start (or interval change) when that is later, so a first sample
 * that never comes is also stalled.
 */
export function collectorHealth(i: CollectorHealthInput): { status: CollectorStatus; level: 'healthy' | 'degraded' } {
  if (!i.enabled) return { status: 'disabled', level: 'healthy' };
  // Enabled but not sampling yet: being started (the first CPU reading is being primed).
  if (!i.cadence) return { status: 'starting', level: 'healthy' };
  const since = Math.max(i.lastSampleAt ?? -Infinity, i.cadence.cadenceFrom);
  if (i.now - since > STALLED_AFTER_INTERVALS * i.liveMs + STALLED_SLACK_MS)
    return { status: 'stalled', level: 'degraded' };
  if (i.persistFailing) return { status: 'persist_failing', level: 'degraded' };
  if (i.lastSampleAt === null || i.lastSampleAt < i.cadence.startedAt) return { status: 'starting', level: 'healthy' };
  return { status: 'running', level: 'healthy' };
}

function slot<T>(sampler: Sampler<T>, toRows: (s: T, host: string) => PointRow[]): Slot<T> {
  return {
    sampler,
    toRows,
    inFlight: false,
    retryAt: 0,
    state: {
      name: sampler.name,
      available: false,
      reason: 'not sampled yet',
      last_sample_at: null,
      last_duration_ms: null,
      samples: 0,
      failures: 0,
      timeouts: 0,
      overlaps_skipped: 0,
      next_attempt_at: null,
    },
  };
}

/** An error the writer answers for this batch whatever the moment: a 4xx other than 429 (a 503 is worth retrying). */
function refusedForGood(err: unknown): boolean {
  const status = (err as { getStatus?: () => number })?.getStatus?.();
  return status !== undefined && status >= 400 && status < 500 && status !== 429;
}
