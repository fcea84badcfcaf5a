/**
 * The contract every detector meets. A detector is a pure function over a series (typed arrays,
 * time order) that scores every point; turning scores into reported anomalies (direction, minimum
 * deviation, episodes, severity) is shared and lives in `episodes.ts`.
 */

export interface SeriesInput {
  /** Epoch ms, ascending. */
  times: Float64Array;
  values: Float64Array;
}

export interface DetectorParams {
  /** 0 < s <= 1; higher finds more. */
  sensitivity: number;
  /** Seeds every random choice (isolation forest): one request gives one answer. */
  seed: number;
  /** Trailing window of the baseline, in points; default from the sampling step. */
  window?: number;
  /** Isolation forest: trees and subsample size (psi). */
  trees?: number;
  subsample?: number;
}

export interface Detection {
  /** Per point: anomaly score normalised so that 1.0 is the decision boundary. */
  score: Float64Array;
  /** Per point: what the detector expected. */
  expected: Float64Array;
  /** Per point: half-width of the normal band (band_low = expected - band, band_high = expected + band). */
  band: Float64Array;
  /**
   * Per point: the reply's `baseline_avg`, the average the point is compared with (see each
   * detector); absent: the mean of the trailing window.
   */
  baseline?: Float64Array;
  /** What the detector decided (window, period, thresholds, ...), echoed in the reply's `parameters`. */
  used: Record<string, unknown>;
}

export type Detector = (series: SeriesInput, params: DetectorParams) => Detection;

/**
 * How many robust standard deviations from the expected value the band reaches: sensitivity 1 →
 * 3 sigma, 0.5 → 5 sigma (the default), near 0 → 7 sigma. Past 5 sigma, Gaussian noise gives about
 * one point in 1.7 million, so a series with no anomaly gets none: never a fixed fraction of points.
 */
export function bandSigmas(sensitivity: number): number {
  return 3 + 4 * (1 - sensitivity);
}

/**
 * A window of fewer points than this gives a scale too noisy to set a band with (the median and
 * MAD of 10 points of noise often come out half the true sigma): shorter series are judged as a
 * whole, against their own median and spread.
 */
export const MIN_WINDOW = 30;

/**
 * Default trailing window: about a day of points, between 100 and 2000 and at most a quarter of the
 * series, but never under MIN_WINDOW points (or the whole series when it is shorter).
 */
export function defaultWindow(n: number, stepMs: number): number {
  const perDay = stepMs > 0 ? Math.round(86_400_000 / stepMs) : 288;
  return Math.max(Math.min(n, MIN_WINDOW), Math.min(Math.max(100, Math.min(perDay, 2000)), Math.floor(n / 4)));
}
