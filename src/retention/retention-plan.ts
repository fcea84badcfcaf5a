import { DAY } from '../common/time.js';

/**
 * Retention decisions, pure: which whole chunks or partitions are past their table's retention.
 * Nothing here touches a database; RetentionService lists the ranges, asks, then drops.
 */

/** A chunk (TimescaleDB) or partition (PostgreSQL) holding times in [from, to). */
export interface TimeRange {
  name: string;
  from: number;
  to: number;
}

/** Everything before this instant is past retention; null: keep forever (0 days). */
export function retentionCutoff(now: number, days: number): number | null {
  return days > 0 ? now - days * DAY : null;
}

/**
 * The ranges to drop: only those that end at or before the cutoff, so no point newer than the
 * cutoff is ever dropped (a range straddling the cutoff waits until it is wholly past it).
 */
export function expiredRanges(ranges: readonly TimeRange[], cutoff: number | null): TimeRange[] {
  if (cutoff === null) return [];
  return ranges.filter((r) => Number.isFinite(r.to) && r.to <= cutoff).sort((a, b) => a.from - b.from);
}

/**
 * Days the rollups are kept: never fewer than the raw points (queries read old ranges from
 * the rollups), and forever when the raw points are kept forever.
 */
export function rollupRetentionDays(rawDays: number, rollupDays: number): number {
  if (rawDays === 0 || rollupDays === 0) return 0;
  return Math.max(rawDays, rollupDays);
}
