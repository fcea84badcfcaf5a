import { floorTo } from '../common/time.js';
import type { Fill } from './query-spec.js';

export interface Bucket {
  /** Bucket start, epoch ms. */
  t: number;
  v: number | null;
}

/**
 * Gap filling over the buckets of [from, to) at `step`. `rows` are the buckets that have data, in
 * time order. none: as is; null / zero: every bucket, empty ones null / 0; previous: the last value
 * seen in the range (null before the first); linear: interpolated between the neighbouring
 * buckets with data (null outside them). An empty range (from = to) has no buckets, filled or not,
 * even where `from` is not on a bucket edge.
 */
export function fillBuckets(rows: readonly Bucket[], from: number, to: number, step: number, fill: Fill): Bucket[] {
  if (from >= to) return [];
  if (fill === 'none') return rows.slice();
  const out: Bucket[] = [];
  let i = 0;
  let prev: Bucket | undefined;
  for (let t = floorTo(from, step); t < to; t += step) {
    while (i < rows.length && rows[i].t < t) i++;
    const hit = i < rows.length && rows[i].t === t ? rows[i] : undefined;
    if (hit) {
      out.push({ t, v: hit.v });
      if (hit.v !== null) prev = hit;
      continue;
    }
    if (fill === 'null') out.push({ t, v: null });
    else if (fill === 'zero') out.push({ t, v: 0 });
    else if (fill === 'previous') out.push({ t, v: prev ? prev.v : null });
    else {
      let j = i;
      while (j < rows.length && rows[j].v === null) j++;
      const next = rows[j];
      out.push({ t, v: prev && next ? prev.v! + ((next.v! - prev.v!) * (t - prev.t)) / (next.t - prev.t) : null });
    }
  }
  return out;
}
