import { ceilTo, floorTo } from '../common/time.js';
import type { Flavour } from '../database/database.js';
import { ROLLUP_AGGREGATIONS, RollupTier, tierFor } from '../storage/tiers.js';
import type { Aggregation } from './query-spec.js';

/**
 * Where the buckets of a query come from. With a rollup tier that tiles the granularity, the
 * whole tier buckets inside [from, to) are read from the rollup, and the ragged edges from raw
 * points, so the numbers equal an aggregation of the raw points:
 *
 *   raw [from, rollupFrom) + rollup [rollupFrom, split) + raw [split, to)
 *
 * On TimescaleDB `split` is rollupTo (continuous aggregates aggregate fresh data on read). On plain
 * PostgreSQL it is the rollup watermark clamped into [rollupFrom, rollupTo], decided in SQL, and
 * falls back to rollupFrom (all raw) while late points below the watermark wait for the refresh.
 */
export interface QueryPlan {
  tier?: RollupTier;
  rollupFrom: number;
  rollupTo: number;
  /** The split point is read from rollup_state in the same statement. */
  watermarkSplit: boolean;
}

export function planQuery(from: number, to: number, granularityMs: number, aggregation: Aggregation, flavour: Flavour): QueryPlan {
  const none: QueryPlan = { rollupFrom: to, rollupTo: to, watermarkSplit: false };
  if (!ROLLUP_AGGREGATIONS.has(aggregation)) return none;
  const tier = tierFor(granularityMs);
  if (!tier) return none;
  const a = ceilTo(from, tier.ms), b = floorTo(to, tier.ms);
  if (a >= b) return none;
  return { tier, rollupFrom: a, rollupTo: b, watermarkSplit: flavour === 'postgresql' };
}
