import { floorTo } from '../common/time.js';
import type { StreamSeries } from './encode.js';
import type { StreamAggregation } from './sse-spec.js';

/**
 * What an interval stream remembers between ticks. Pure.
 * - `last`: the latest point per series (by point time), emitted for every known series each tick.
 * - avg/min/max/sum/count: count, sum, min and max per series in buckets of the interval aligned
 *   to the epoch by point time (as the query API buckets them); a bucket is emitted once, when
 *   it has closed, so a point for an already emitted bucket (late) or more than one interval
 *   ahead (a skewed clock) is not counted live; it is stored all the same.
 */
export interface Emission {
  series: StreamSeries;
  seriesId: number;
  /** `last`: the point's time; aggregates: the bucket start. */
  time: number;
  value: number;
  count?: number;
}

interface Acc {
  series: StreamSeries;
  count: number;
  sum: number;
  min: number;
  max: number;
}

export class IntervalState {
  private readonly latest = new Map<number, { series: StreamSeries; time: number; value: number }>();
  private readonly buckets = new Map<number, Map<number, Acc>>();
  /** Buckets starting before this have been emitted. */
  private closedBefore = -Infinity;
  /** Points not counted: late, too far ahead, or past the series cap. */
  dropped = 0;

  constructor(
    readonly intervalMs: number,
    readonly aggregation: StreamAggregation,
    private readonly maxSeries: number,
  ) {}

  get seriesCount(): number {
    return this.aggregation === 'last'
      ? this.latest.size
      : Math.max(0, ...[...this.buckets.values()].map((b) => b.size));
  }

  add(seriesId: number, series: StreamSeries, time: number, value: number, now: number): void {
    if (this.aggregation === 'last') {
      const cur = this.latest.get(seriesId);
      if (cur) {
        if (time >= cur.time) {
          cur.time = time;
          cur.value = value;
          cur.series = series;
        }
      } else if (this.latest.size < this.maxSeries) this.latest.set(seriesId, { series, time, value });
      else this.dropped++;
      return;
    }
    const b = floorTo(time, this.intervalMs);
    if (b < this.closedBefore || b > floorTo(now, this.intervalMs) + this.intervalMs) {
      this.dropped++;
      return;
    }
    let bucket = this.buckets.get(b);
    if (!bucket) this.buckets.set(b, (bucket = new Map()));
    const acc = bucket.get(seriesId);
    if (acc) {
      acc.count++;
      acc.sum += value;
      if (value < acc.min) acc.min = value;
      if (value > acc.max) acc.max = value;
    } else if (bucket.size < this.maxSeries)
      bucket.set(seriesId, { series, count: 1, sum: value, min: value, max: value });
    else this.dropped++;
  }

  /** `last`: every known series. Aggregates: every bucket that ends at or before `end`, then closed. */
  take(end: number): Emission[] {
    if (this.aggregation === 'last')
      return [...this.latest].map(([seriesId, l]) => ({ series: l.series, seriesId, time: l.time, value: l.value }));
    const out: Emission[] = [];
    for (const start of [...this.buckets.keys()].sort((a, b) => a - b)) {
      if (start + this.intervalMs > end) break;
      for (const [seriesId, a] of this.buckets.get(start)!)
        out.push({ series: a.series, seriesId, time: start, value: aggregate(this.aggregation, a), count: a.count });
      this.buckets.delete(start);
    }
    this.closeBefore(end);
    return out;
  }

  /** Forgets buckets starting before `t` (they were served from storage) and counts none of them again. */
  closeBefore(t: number): void {
    for (const start of this.buckets.keys()) if (start < t) this.buckets.delete(start);
    this.closedBefore = Math.max(this.closedBefore, t);
  }
}

export function aggregate(agg: StreamAggregation, a: { count: number; sum: number; min: number; max: number }): number {
  switch (agg) {
    case 'avg':
      return a.sum / a.count;
    case 'sum':
      return a.sum;
    case 'min':
      return a.min;
    case 'max':
      return a.max;
    case 'count':
      return a.count;
    default:
      throw new Error(`${agg} is not a bucket aggregate`);
  }
}
