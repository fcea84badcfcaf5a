import { Detection, DetectorParams, SeriesInput } from './detector.js';
import { IsolationForest } from './isolation-forest.js';
import { madDetector } from './mad.js';
import { flooredScale, mad, MAD_TO_SIGMA, median, scaleFloor } from './robust.js';
import { seasonalDetector, detectSeasonality } from './seasonal.js';

export const FOREST_DEFAULTS = { trees: 100, subsample: 1024 };

/**
 * The isolation-forest score at the decision boundary: sensitivity 1 → 0.52, 0.5 → 0.62 (default),
 * near 0 → 0.72 (tuned on NAB). Fixed, not a quantile of the scores, so a series without anomalies
 * gets none.
 */
export function forestThreshold(sensitivity: number): number {
  return 0.52 + 0.2 * (1 - sensitivity);
}

/**
 * Isolation forest over time-series features: the value's distance from its baseline (seasonal
 * when the series has a season, else the trailing median) in robust sigmas, the level itself and
 * the first difference, both scaled the same way. A point is reported when the forest isolates it
 * (score past the threshold) and it also lies outside the baseline's band: the forest ranks
 * unusual combinations, the band keeps "unusual" meaningful on a series without anomalies. Points
 * inside the band score 0.
 */
export function forestDetector(series: SeriesInput, params: DetectorParams): Detection {
  const { values } = series;
  const n = values.length;
  const season = detectSeasonality(series);
  const base = season ? seasonalDetector(series, params, season) : madDetector(series, params);
  const k = Number(base.used.band_sigmas);
  const dims = 3;
  const data = new Float64Array(n * dims);
  const mid = median(values);
  const spread = flooredScale(MAD_TO_SIGMA * mad(values, mid), scaleFloor(values));
  for (let i = 0; i < n; i++) {
    const sigma = base.band[i] / k;
    data[i * dims] = (values[i] - base.expected[i]) / sigma;
    data[i * dims + 1] = (values[i] - mid) / spread;
    data[i * dims + 2] = i > 0 ? (values[i] - values[i - 1]) / sigma : 0;
  }
  const trees = params.trees ?? FOREST_DEFAULTS.trees;
  const subsample = params.subsample ?? FOREST_DEFAULTS.subsample;
  const forest = IsolationForest.fit(data, dims, { trees, subsample, seed: params.seed });
  const t = forestThreshold(params.sensitivity);
  // Reported only outside the baseline's band widened by one sigma: only those candidates need the
  // forest's score (usually a few percent of the points, which makes a million points affordable).
  const gate = (k - 1) / k;
  let m = 0;
  const candidates = new Int32Array(n);
  for (let i = 0; i < n; i++) if (base.score[i] >= gate) candidates[m++] = i;
  const raw = forest.score(data, candidates.subarray(0, m));
  const score = new Float64Array(n);
  for (let q = 0; q < m; q++) {
    const i = candidates[q];
    score[i] = Math.max(0, (raw[i] - 0.5) / (t - 0.5));
  }
  return {
    score,
    expected: base.expected,
    band: base.band,
    used: { ...base.used, trees, subsample: forest.psi, height_limit: forest.heightLimit, score_threshold: t, seed: params.seed },
  };
}
