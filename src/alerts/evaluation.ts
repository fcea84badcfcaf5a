/**
 * When an alert fires and when it resolves, from stored points. Pure.
 *
 * For one series, the condition (a threshold, or "this point is anomalous") is true or false at
 * each point, and a point's value stands until the next point. With D = duration and R = recovery:
 * - the alert fires when the condition held for the whole of [now − D, now]: the point in force at
 *   now − D (the last one at or before it) and every point since satisfy it;
 * - a firing alert resolves when the condition did not hold for the whole of [now − R, now];
 * - a series with no point for STALE_MS has no data: it does not fire, and its alert resolves.
 * A single point past the threshold therefore cannot fire an alert (unless D = 0), and a single
 * point back below it cannot resolve one (unless R = 0): no flapping on a single point.
 */

/** A series silent this long has no data (as Prometheus marks series stale after 5 minutes). */
export const STALE_MS = 5 * 60_000;

export interface Timing {
  durationMs: number;
  recoveryMs: number;
  staleMs: number;
}

/** What the decision needs about one series around `now` (epoch ms, null when there is no such point). */
export interface WindowStats {
  /** Latest point at or before now. */
  lastTime: number | null;
  lastValue: number | null;
  /** Latest point at or before now − D, if it is fresh there (within STALE_MS of now − D). */
  fireEdge: number | null;
  /** Latest point at or before now − R, if it is fresh there. */
  resolveEdge: number | null;
  /** Latest points where the condition held / did not hold, in (now − max(D, R) − STALE_MS, now]. */
  lastTrue: number | null;
  lastFalse: number | null;
}

/** The points an evaluation reads: (now − max(D, R) − STALE_MS, now]. */
export function lookback(now: number, t: Timing): { from: number; fireEdge: number; resolveEdge: number } {
  return {
    from: now - Math.max(t.durationMs, t.recoveryMs) - t.staleMs,
    fireEdge: now - t.durationMs,
    resolveEdge: now - t.recoveryMs,
  };
}

export type Action = 'fire' | 'keep' | 'resolve' | 'none';

export interface Decision {
  action: Action;
  /** Inactive, but the condition holds now: it fires if it keeps holding for the rest of D. */
  pending: boolean;
  /** Why a firing alert resolves. */
  reason?: 'cleared' | 'no_data';
}

export function decide(w: WindowStats, now: number, t: Timing, active: boolean): Decision {
  const fresh = w.lastTime !== null && w.lastTime > now - t.staleMs;
  if (!active) {
    const held = fresh && w.fireEdge !== null && (w.lastFalse === null || w.lastFalse < w.fireEdge);
    if (held) return { action: 'fire', pending: false };
    return { action: 'none', pending: fresh && w.lastTrue !== null && w.lastTrue === w.lastTime };
  }
  if (!fresh) return { action: 'resolve', pending: false, reason: 'no_data' };
  const cleared = w.resolveEdge !== null && (w.lastTrue === null || w.lastTrue < w.resolveEdge);
  return cleared ? { action: 'resolve', pending: false, reason: 'cleared' } : { action: 'keep', pending: false };
}

/** WindowStats from points in time order (what the SQL computes for thresholds, here for anomaly rules and tests). */
export function summarize(
  points: ReadonlyArray<{ time: number; value: number; holds: boolean }>,
  now: number,
  t: Timing,
): WindowStats {
  const { from, fireEdge, resolveEdge } = lookback(now, t);
  const w: WindowStats = {
    lastTime: null,
    lastValue: null,
    fireEdge: null,
    resolveEdge: null,
    lastTrue: null,
    lastFalse: null,
  };
  for (const p of points) {
    if (p.time <= from || p.time > now || Number.isNaN(p.value)) continue;
    if (w.lastTime === null || p.time >= w.lastTime) {
      w.lastTime = p.time;
      w.lastValue = p.value;
    }
    if (p.time <= fireEdge && p.time > fireEdge - t.staleMs && (w.fireEdge === null || p.time > w.fireEdge))
      w.fireEdge = p.time;
    if (p.time <= resolveEdge && p.time > resolveEdge - t.staleMs && (w.resolveEdge === null || p.time > w.resolveEdge))
      w.resolveEdge = p.time;
    if (p.holds) w.lastTrue = Math.max(w.lastTrue ?? -Infinity, p.time);
    else w.lastFalse = Math.max(w.lastFalse ?? -Infinity, p.time);
  }
  return w;
}
