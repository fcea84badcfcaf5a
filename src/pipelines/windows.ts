/**
 * Which windows a run covers. Pure. Window ends sit on multiples of the step (`schedule.every`, or
 * the window for tumbling windows) counted from the Unix epoch; the window ending at `e` is
 * [e - window, e). A window belongs to the range that holds its last instant: a range [from, to)
 * covers the windows whose end falls in (from, to]. So consecutive ranges never share a window, and
 * a dry-run over a range covers exactly the windows a scheduled run over that range processes.
 * A window is only run once it has ended.
 */

/** Ends of the windows of [from, to) that have ended by `now`, oldest first. */
export function windowEnds(from: number, to: number, stepMs: number, now: number): number[] {
  const last = Math.floor(Math.min(to, now) / stepMs) * stepMs;
  const first = Math.floor(from / stepMs) * stepMs + stepMs;
  const ends: number[] = [];
  for (let e = first; e <= last; e += stepMs) ends.push(e);
  return ends;
}

/** How many windows [from, to) holds, without listing them (to refuse a huge range before work). */
export function countWindows(from: number, to: number, stepMs: number, now: number): number {
  const last = Math.floor(Math.min(to, now) / stepMs) * stepMs;
  const first = Math.floor(from / stepMs) * stepMs + stepMs;
  return last < first ? 0 : (last - first) / stepMs + 1;
}

/** The range a manual run covers by default: the last window that has ended. */
export function lastWindow(now: number, stepMs: number, windowMs: number): { from: number; to: number } {
  const end = Math.floor(now / stepMs) * stepMs;
  return { from: end - Math.min(stepMs, windowMs), to: end };
}

export interface DueWindows {
  /** Ends of the windows to run now, oldest first (empty: nothing is due). */
  ends: number[];
  /** Windows missed during downtime beyond the catch-up bound, left for a manual run. */
  skipped: number;
  /** The range of the skipped windows (their ends in (skippedFrom, skippedTo]). */
  skippedFrom?: number;
  skippedTo?: number;
  /** When the next window becomes due. */
  nextDueAt: number;
}

/**
 * The windows a scheduled run processes at `now`: every window that ended at least `delayMs` ago
 * and after `lastEnd` (the last window already processed). A pipeline never run starts with the
 * latest window. After downtime, at most `maxCatchup` windows are caught up (the most recent
 * ones); older ones are reported as skipped rather than replayed without bound.
 */
export function dueWindows(
  lastEnd: number | null,
  now: number,
  stepMs: number,
  delayMs: number,
  maxCatchup: number,
): DueWindows {
  const latest = Math.floor((now - delayMs) / stepMs) * stepMs;
  const nextDueAt = latest + stepMs + delayMs;
  if (lastEnd === null) return { ends: [latest], skipped: 0, nextDueAt };
  const first = Math.floor(lastEnd / stepMs) * stepMs + stepMs;
  if (first > latest) return { ends: [], skipped: 0, nextDueAt: Math.max(nextDueAt, first + delayMs) };
  const count = (latest - first) / stepMs + 1;
  const keep = Math.min(count, Math.max(1, maxCatchup));
  const start = latest - (keep - 1) * stepMs;
  const ends: number[] = [];
  for (let e = start; e <= latest; e += stepMs) ends.push(e);
  const skipped = count - keep;
  return skipped > 0
    ? { ends, skipped, skippedFrom: lastEnd, skippedTo: start - stepMs, nextDueAt }
    : { ends, skipped: 0, nextDueAt };
}

/** The longest wait after failed scheduled runs (and after a stored definition that no longer validates). */
export const MAX_BACKOFF_MS = 3_600_000;

/** Doubling back-off after failed scheduled runs, from one step (at least 5 s) up to an hour. */
export const backoffMs = (stepMs: number, failures: number) =>
  Math.min(MAX_BACKOFF_MS, Math.max(5_000, stepMs) * 2 ** Math.min(failures - 1, 20));
