import { ceilTo, floorTo } from '../common/time.js';
import { ROLLUP_AGGREGATIONS, ROLLUP_TIERS, RollupTier } from './tiers.js';

/**
 * Where the buckets of a query come from: a cover of [from, to) by segments, each read from raw
 * points or from one rollup tier, such that the merged numbers equal an aggregation of the raw
 * points. A tier may serve a segment only if its buckets tile the query's buckets (its width
 * divides the granularity, both aligned to the epoch) and lie wholly inside the range and below
 * `materialisedUntil`. The coarsest tier takes the middle, finer tiers the ragged edges, raw
 * points what is left:
 *
 *   raw | 1m | 5m |      1h      | 5m | 1m | raw (after the watermark)
 */
export interface Segment {
  /** A rollup tier, or undefined for raw points. */
  tier?: RollupTier;
  from: number;
  to: number;
}

export interface RollupState {
  /**
   * Rollups are complete for buckets ending at or before this time (epoch ms). Infinity when they
   * are computed on read (TimescaleDB real-time aggregates); -Infinity when nothing is materialised.
   */
  materialisedUntil: number;
}

/** `aggregation`: avg, sum, min, max and count may read rollups; anything else (first, last) reads raw points only. */
export function planSegments(
  from: number,
  to: number,
  granularityMs: number,
  aggregation: string,
  state: RollupState,
): Segment[] {
  if (from >= to) return [];
  const tiers = ROLLUP_AGGREGATIONS.has(aggregation)
    ? ROLLUP_TIERS.filter((t) => granularityMs % t.ms === 0).reverse()
    : [];
  const split = Math.max(from, Math.min(to, state.materialisedUntil));
  const out: Segment[] = [];
  cover(from, split, tiers, out);
  if (split < to) out.push({ from: split, to });
  return merge(out);
}

/** Covers [a, b) with the coarsest tier possible in the middle and finer ones (or raw) at the edges. */
function cover(a: number, b: number, tiers: readonly RollupTier[], out: Segment[]): void {
  if (a >= b) return;
  if (tiers.length === 0) {
    out.push({ from: a, to: b });
    return;
  }
  const [t, ...finer] = tiers;
  const ta = ceilTo(a, t.ms),
    tb = floorTo(b, t.ms);
  if (ta >= tb) return cover(a, b, finer, out);
  cover(a, ta, finer, out);
  out.push({ tier: t, from: ta, to: tb });
  cover(tb, b, finer, out);
}

/** Joins neighbouring raw segments (they arise when no finer tier fits an edge). */
function merge(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) {
    const last = out[out.length - 1];
    if (last && !last.tier && !s.tier && last.to === s.from) last.to = s.to;
    else out.push({ ...s });
  }
  return out;
}

/** The coarsest tier used, for the reply's `rollup` field. */
export function coarsestTier(segments: readonly Segment[]): RollupTier | undefined {
  let best: RollupTier | undefined;
  for (const s of segments) if (s.tier && (!best || s.tier.ms > best.ms)) best = s.tier;
  return best;
}

/**
 * Splits time-ordered segments where they meet on a bucket edge (date_bin from the epoch): no
 * bucket takes rows from two runs, so each run can be aggregated alone.
 */
export function bucketRuns(segments: readonly Segment[], widthMs: number): Segment[][] {
  const runs: Segment[][] = [];
  for (const s of segments) {
    const last = runs[runs.length - 1];
    if (last && s.from % widthMs !== 0) last.push(s);
    else runs.push([s]);
  }
  return runs;
}
