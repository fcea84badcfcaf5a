import type { PointBatch } from '../storage/point-batch.js';
import type { StreamSeries } from './encode.js';

/**
 * The last `capacity` committed points in commit order, each with a sequence number, so that an
 * SSE client reconnecting with Last-Event-ID gets what it missed while that is still here.
 * Columnar typed arrays (20 bytes a point) plus one identity per series held, not per point:
 * keeping each batch's own series objects would hold on to every request's garbage.
 */
export class ReplayRing {
  private readonly times: Float64Array;
  private readonly values: Float64Array;
  private readonly ids: Int32Array;
  /** Series id → identity, for the series of the points held (pruned when it outgrows them). */
  private readonly series = new Map<number, StreamSeries>();
  /** Sequence number the next point gets; sequence numbers start at 1. */
  private next = 1;

  constructor(readonly capacity: number) {
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
    this.ids = new Int32Array(capacity);
  }

  /** Sequence number of the newest point (0 when none yet). */
  get last(): number {
    return this.next - 1;
  }

  /** Oldest sequence number still held. */
  get first(): number {
    return Math.max(1, this.next - this.capacity);
  }

  get seriesHeld(): number {
    return this.series.size;
  }

  /** Appends a committed batch; returns the sequence number of its first point. */
  push(batch: PointBatch, ids: Int32Array): number {
    const start = this.next;
    this.next += batch.length;
    const cap = this.capacity;
    if (cap === 0) return start;
    for (let s = 0; s < batch.series.length; s++) this.series.set(ids[s], batch.series[s]);
    // Only the last `cap` points of a huge batch can be kept.
    for (let i = Math.max(0, batch.length - cap); i < batch.length; i++) {
      const slot = (start + i) % cap;
      const s = batch.seriesIndex[i];
      this.times[slot] = batch.times[i];
      this.values[slot] = batch.values[i];
      this.ids[slot] = ids[s];
    }
    if (this.series.size > cap) this.prune();
    return start;
  }

  /** Whether every point after `seq` is still held (so a replay from there is complete). */
  covers(seq: number): boolean {
    return seq >= this.first - 1 && seq <= this.last;
  }

  /** Calls `fn` for each held point after `seq`, oldest first, until it returns false. */
  forEachAfter(
    seq: number,
    fn: (seq: number, series: StreamSeries, seriesId: number, time: number, value: number) => boolean,
  ): void {
    for (let q = Math.max(seq + 1, this.first); q <= this.last; q++) {
      const slot = q % this.capacity;
      const id = this.ids[slot];
      if (!fn(q, this.series.get(id)!, id, this.times[slot], this.values[slot])) return;
    }
  }

  /** Forgets the identities of series that no held point belongs to. */
  private prune(): void {
    const held = new Set<number>();
    for (let q = this.first; q <= this.last; q++) held.add(this.ids[q % this.capacity]);
    for (const id of this.series.keys()) if (!held.has(id)) this.series.delete(id);
  }
}
