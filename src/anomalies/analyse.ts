import type { DetectorParams, SeriesInput } from './detector.js';
import { Algorithm, detectorFor } from './detectors.js';
import { AnomalyReport, describeEpisode, Direction, findEpisodes, MinDeviation } from './episodes.js';
import { trailingMeanStd, typicalStep } from './robust.js';

export interface AnalysisOptions extends DetectorParams {
  algorithm: Algorithm;
  /** The trailing window as a duration; turned into points with the series' own sampling step. */
  windowMs?: number;
  direction: Direction;
  minDeviation?: MinDeviation;
}

export interface Analysis {
  anomalies: AnomalyReport[];
  /** What the detector chose (window, season, thresholds, ...). */
  used: Record<string, unknown>;
}

/** A lone point past the boundary is reported only from this score on; a run of two or more always is. */
export const LONE_POINT_SCORE = 1.5;

/**
 * One series in, its anomalies out: score every point, then report one anomaly per episode.
 * Flagged points closer than a quarter of the detector's window belong to one episode. Both
 * settings were tuned on the NAB development set (see bench/nab.bench.ts and the README).
 */
export function analyseSeries(series: SeriesInput, opts: AnalysisOptions): Analysis {
  if (series.values.length === 0) return { anomalies: [], used: {} };
  const window =
    opts.windowMs !== undefined
      ? Math.max(3, Math.round(opts.windowMs / (typicalStep(series.times) || opts.windowMs)))
      : opts.window;
  const det = detectorFor(opts.algorithm)(series, { ...opts, window });
  const gap = Math.max(1, Math.round((Number(det.used.window) || 1) / 4));
  const episodes = findEpisodes(series, det, {
    direction: opts.direction,
    minDeviation: opts.minDeviation,
    gap,
    loneScore: LONE_POINT_SCORE,
  });
  const baselineAvg = det.baseline ?? trailingMeanStd(series.values, Number(det.used.window) || 1).mean;
  return {
    anomalies: episodes.map((e) => describeEpisode(series, det, e, baselineAvg)),
    used: { ...det.used, episode_gap_points: gap },
  };
}
