import { canonicalTags, PointBatch, PointBatchBuilder, seriesKey } from '../storage/point-batch.js';
import type { PointRow } from './to-points.js';

interface SeriesDef {
  metric: string;
  tags: Record<string, string>;
  unit: string;
}

/** Distinct series one host can have before new ones are refused (interfaces and mounts come and go). */
const MAX_SERIES = 10_000;

/**
 * Samples waiting to be persisted: a bounded ring of (series, time, value), columnar. Positions are
 * absolute sequence numbers, so a persist that takes [from, to) can release exactly those rows even
 * if the oldest were overwritten meanwhile. Full: the oldest rows are dropped and counted. Storage
 * grows by doubling up to the bound, so an idle collector holds a few kilobytes.
 */
export class SampleBuffer {
  private readonly series: SeriesDef[] = [];
  private readonly seriesIdx = new Map<string, number>();
  private ids = new Int32Array(1024);
  private times = new Float64Array(1024);
  private values = new Float64Array(1024);
  private head = 0; // sequence number of the oldest row held
  private tail = 0; // sequence number of the next row
  /** Rows dropped because the buffer was full, and rows refused past the series bound. */
  dropped = 0;
  refused = 0;

  constructor(private capacity: number) {}

  get size(): number {
    return this.tail - this.head;
  }

  get bound(): number {
    return this.capacity;
  }

  get oldestSeq(): number {
    return this.head;
  }

  get nextSeq(): number {
    return this.tail;
  }

  add(rows: readonly PointRow[], time: number): void {
    for (const r of rows) {
      const idx = this.seriesOf(r);
      if (idx < 0) {
        this.refused++;
        continue;
      }
      if (this.size === this.capacity) {
        this.head++;
        this.dropped++;
      }
      if (this.size === this.ids.length) this.grow();
      const slot = this.tail % this.ids.length;
      this.ids[slot] = idx;
      this.times[slot] = time;
      this.values[slot] = r.value;
      this.tail++;
    }
  }

  /** A new bound (PUT /api/v1/config): shrinking drops the oldest rows. */
  resize(capacity: number): void {
    const keep = Math.min(this.size, capacity);
    const excess = this.size - keep;
    this.head += excess;
    this.dropped += excess;
    this.capacity = capacity;
    if (this.ids.length > Math.max(1024, capacity)) this.realloc(Math.max(1024, keep));
  }

  /** Up to `max` rows from the oldest, as one batch of the write path, and the sequence they end at. */
  take(source: string, max: number, minTime = -Infinity): { batch: PointBatch; upTo: number; expired: number } {
    const end = Math.min(this.tail, this.head + max);
    const builder = new PointBatchBuilder(end - this.head);
    const local = new Int32Array(this.series.length).fill(-1);
    let expired = 0;
    for (let seq = this.head; seq < end; seq++) {
      const slot = seq % this.ids.length;
      const t = this.times[slot];
      if (t < minTime) {
        expired++; // past the retention: it would be dropped by the next retention run anyway
        continue;
      }
      const id = this.ids[slot];
      if (local[id] < 0) {
        const s = this.series[id];
        local[id] = builder.addSeries(s.metric, source, s.tags, s.unit);
      }
      builder.push(local[id], t, this.values[slot]);
    }
    return { batch: builder.build(), upTo: end, expired };
  }

  /** Forgets every row before `seq` (they were persisted, or dropped meanwhile). */
  release(seq: number): void {
    if (seq > this.head) this.head = Math.min(seq, this.tail);
  }

  private seriesOf(r: PointRow): number {
    const key = seriesKey(r.metric, '', canonicalTags(r.tags).tagsKey);
    let idx = this.seriesIdx.get(key);
    if (idx === undefined) {
      if (this.series.length >= MAX_SERIES) return -1;
      idx = this.series.length;
      this.series.push({ metric: r.metric, tags: r.tags, unit: r.unit });
      this.seriesIdx.set(key, idx);
    }
    return idx;
  }

  private grow(): void {
    this.realloc(Math.min(this.ids.length * 2, Math.max(this.capacity, this.ids.length + 1)));
  }

  private realloc(length: number): void {
    const ids = new Int32Array(length),
      times = new Float64Array(length),
      values = new Float64Array(length);
    let j = 0;
    for (let seq = this.head; seq < this.tail; seq++, j++) {
      const slot = seq % this.ids.length;
      ids[(this.head + j) % length] = this.ids[slot];
      times[(this.head + j) % length] = this.times[slot];
      values[(this.head + j) % length] = this.values[slot];
    }
    this.ids = ids;
    this.times = times;
    this.values = values;
  }
}
