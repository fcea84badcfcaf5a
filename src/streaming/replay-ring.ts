import type { PointBatch } from '../storage/point-batch.js';
import type { StreamSeries } from './encode.js';

/**
 * The last `capacity` committed points in commit order, each with a sequence number, so that an
 * SSE client reconnecting with Last-Event-ID gets what it missed while that is still here.
 * Columnar typed arrays: a slot costs 20 bytes plus a shared reference to its series.
 */
export class ReplayRing {
  private readonly times: Float64Array;
  private readonly values: Float64Array;
  private readonly ids: Int32Array;
  private readonly series: Array<StreamSeries | undefined>;
  /** Sequence number the next point gets; sequence numbers start at 1. */
  private next = 1;

  constructor(readonly capacity: number) {
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
    this.ids = new Int32Array(capacity);
    this.series = new Array(capacity);
  }

  /** Sequence number of the newest point (0 when none yet). */
  get last(): number {
    return this.next - 1;
  }

  /** Oldest sequence number still held. */
  get first(): number {
    return Math.max(1, this.next - this.capacity);
  }

  /** Appends a committed batch; returns the sequence number of its first point. */
  push(batch: PointBatch, ids: Int32Array): number {
    const start = this.next;
    this.next += batch.length;
    const cap = this.capacity;
    if (cap === 0) return start;
    // Only the last `cap` points of a huge batch can be kept.
    for (let i = Math.max(0, batch.length - cap); i < batch.length; i++) {
      const slot = (start + i) % cap;
      const s = batch.seriesIndex[i];
      this.times[slot] = batch.times[i];
      this.values[slot] = batch.values[i];
      this.ids[slot] = ids[s];
      this.series[slot] = batch.series[s];
    }
    return start;
  }

  /** Whether every point after `seq` is still held (so a replay from there is complete). */
  covers(seq: number): boolean {
    return seq >= this.first - 1 && seq <= this.last;
  }

  /** Calls `fn` for each held point after `seq`, oldest first, until it returns false. */
  forEachAfter(seq: number, fn: (seq: number, series: StreamSeries, seriesId: number, time: number, value: number) => boolean): void {
    for (let q = Math.max(seq + 1, this.first); q <= this.last; q++) {
      const slot = q % this.capacity;
      if (!fn(q, this.series[slot]!, this.ids[slot], this.times[slot], this.values[slot])) return;
    }
  }
}
