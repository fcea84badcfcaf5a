import { DetectorParams, MIN_WINDOW, SeriesInput } from './detector.js';
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
  // An asked window is kept to at least MIN_WINDOW points (the whole series when it is shorter), as
  // the default is: the median and MAD of a handful of points make ordinary noise stand out.
  const floor = Math.min(series.values.length, MIN_WINDOW);
  const window =
    opts.windowMs !== undefined
      ? Math.max(floor, Math.round(opts.windowMs / (typicalStep(series.times) || opts.windowMs)))
      : opts.window === undefined
        ? undefined
        : Math.max(floor, opts.window);
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
