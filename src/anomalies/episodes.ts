import type { Detection, SeriesInput } from './detector.js';

/**
 * From per-point scores to what a person wants to read: one anomaly per episode. Points past the
 * boundary (score >= 1) that go the asked direction and deviate by at least the minimum form runs;
 * runs closer than `gap` points are one episode, reported at its first point with its peak and
 * length. A rolling z-score that reports every point scored about -545 on NAB; the same detector
 * reporting episode starts scored about -11 (notes/anomaly.md).
 */

export const DIRECTIONS = ['both', 'above', 'below'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export interface MinDeviation {
  /** `absolute`: |value - expected| >= value; `relative`: >= value × |expected| (value as a fraction). */
  kind: 'absolute' | 'relative';
  value: number;
}

export interface EpisodeOptions {
  direction: Direction;
  minDeviation?: MinDeviation;
  /** Flagged points at most this many points apart belong to one episode. */
  gap: number;
  /** A lone flagged point is reported only at or past this score (a run of two or more always is). */
  loneScore?: number;
}

export interface Episode {
  start: number;
  peak: number;
  end: number;
  /** Flagged points in the episode. */
  flagged: number;
}

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Severity from the normalised score: just past the boundary is low, three times past it critical. */
export function severity(score: number): Severity {
  return score >= 3 ? 'critical' : score >= 2 ? 'high' : score >= 1.5 ? 'medium' : 'low';
}

export function isFlagged(
  series: SeriesInput,
  det: Detection,
  i: number,
  opts: Pick<EpisodeOptions, 'direction' | 'minDeviation'>,
): boolean {
  if (!(det.score[i] >= 1)) return false;
  const dev = series.values[i] - det.expected[i];
  if (opts.direction === 'above' && !(dev > 0)) return false;
  if (opts.direction === 'below' && !(dev < 0)) return false;
  const m = opts.minDeviation;
  if (m) {
    const need = m.kind === 'absolute' ? m.value : m.value * Math.abs(det.expected[i]);
    if (!(Math.abs(dev) >= need)) return false;
  }
  return true;
}

export function findEpisodes(series: SeriesInput, det: Detection, opts: EpisodeOptions): Episode[] {
  const n = series.values.length;
  const out: Episode[] = [];
  let cur: Episode | null = null;
  for (let i = 0; i < n; i++) {
    if (!isFlagged(series, det, i, opts)) continue;
    if (cur && i - cur.end <= opts.gap) {
      cur.end = i;
      cur.flagged++;
      if (det.score[i] > det.score[cur.peak]) cur.peak = i;
    } else {
      cur = { start: i, peak: i, end: i, flagged: 1 };
      out.push(cur);
    }
  }
  const lone = opts.loneScore ?? 1;
  return out.filter((e) => e.flagged > 1 || det.score[e.peak] >= lone);
}

export interface AnomalyReport {
  timestamp: string;
  value: number;
  score: number;
  severity: Severity;
  context: {
    baseline_avg: number;
    deviation: number;
    expected: number;
    band_low: number;
    band_high: number;
  };
  episode: {
    end: string;
    duration_ms: number;
    points: number;
    flagged_points: number;
    peak_timestamp: string;
    peak_value: number;
    peak_score: number;
  };
}

/** Twelve significant digits: drops float noise (47.300000000000004), keeps every real digit of a metric. */
const r = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(12)) : x);

/** Reported scores stop here: past it (a departure from a flat line, a scale near 0) the number says nothing more. */
export const MAX_REPORTED_SCORE = 1000;
const shown = (score: number) => Math.round(Math.min(score, MAX_REPORTED_SCORE) * 1000) / 1000;

/**
 * The reply's anomaly: the episode's first point, its peak score and severity, and its extent.
 * `baselineAvg` is the mean of the trailing window at each point (the reference's `baseline_avg`).
 */
export function describeEpisode(
  series: SeriesInput,
  det: Detection,
  ep: Episode,
  baselineAvg: Float64Array,
): AnomalyReport {
  const { times, values } = series;
  const s = ep.start,
    p = ep.peak;
  const peakScore = det.score[p];
  return {
    timestamp: new Date(times[s]).toISOString(),
    value: values[s],
    score: shown(peakScore),
    severity: severity(peakScore),
    context: {
      baseline_avg: r(baselineAvg[s]),
      deviation: r(values[s] - det.expected[s]),
      expected: r(det.expected[s]),
      band_low: r(det.expected[s] - det.band[s]),
      band_high: r(det.expected[s] + det.band[s]),
    },
    episode: {
      end: new Date(times[ep.end]).toISOString(),
      duration_ms: times[ep.end] - times[s],
      points: ep.end - s + 1,
      flagged_points: ep.flagged,
      peak_timestamp: new Date(times[p]).toISOString(),
      peak_value: values[p],
      peak_score: shown(peakScore),
    },
  };
}
