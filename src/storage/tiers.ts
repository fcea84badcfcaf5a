import { DAY, HOUR, MINUTE } from '../common/time.js';

/**
 * Rollup tiers: pre-aggregated (count, sum, min, max) per series and bucket. Each tier is built
 * from the one below (raw → 1m → 5m → 1h → 1d). On plain PostgreSQL they are range-partitioned
 * tables of the given partition width; on TimescaleDB, continuous aggregates.
 */
export interface RollupTier {
  readonly label: string;
  readonly table: 'rollup_1m' | 'rollup_5m' | 'rollup_1h' | 'rollup_1d';
  readonly ms: number;
  readonly interval: string;
  readonly partitionMs: number;
}

export const ROLLUP_TIERS: readonly RollupTier[] = [
  { label: '1m', table: 'rollup_1m', ms: MINUTE, interval: '1 minute', partitionMs: DAY },
  { label: '5m', table: 'rollup_5m', ms: 5 * MINUTE, interval: '5 minutes', partitionMs: 7 * DAY },
  { label: '1h', table: 'rollup_1h', ms: HOUR, interval: '1 hour', partitionMs: 30 * DAY },
  { label: '1d', table: 'rollup_1d', ms: DAY, interval: '1 day', partitionMs: 365 * DAY },
];

export const POINTS_PARTITION_MS = DAY;

/** Aggregations a rollup can answer exactly (first/last need the raw points). */
export const ROLLUP_AGGREGATIONS = new Set(['avg', 'sum', 'min', 'max', 'count']);

/** The coarsest tier whose buckets tile buckets of `granularityMs` exactly, if any. */
export function tierFor(granularityMs: number): RollupTier | undefined {
  let best: RollupTier | undefined;
  for (const t of ROLLUP_TIERS) if (granularityMs >= t.ms && granularityMs % t.ms === 0) best = t;
  return best;
}
