import { Detection, DetectorParams, SeriesInput } from './detector.js';
import { IsolationForest } from './isolation-forest.js';
import { madDetector } from './mad.js';
import { flooredScale, mad, MAD_TO_SIGMA, median, scaleFloor } from './robust.js';
import { seasonalDetector, detectSeasonality } from './seasonal.js';

export const FOREST_DEFAULTS = { trees: 100, subsample: 1024 };

/**
 * The isolation-forest score at the decision boundary, falling linearly with the sensitivity:
 * 1 → 0.52, 0.5 → 0.62 (default), 0.1 → 0.70, near 0 → 0.72 (tuned on NAB). Fixed, not a quantile
 * of the scores (no contamination share), so a series without anomalies gets none.
 */
export function forestThreshold(sensitivity: number): number {
  return 0.52 + 0.2 * (1 - sensitivity);
}

/**
 * Isolation forest over time-series features, one row per point: the value's distance from its
 * baseline in robust sigmas (the baseline is seasonal when the series has a season, else the
 * `mad` detector's: the trailing median, or the local level of a smooth series), the value itself
 * (distance from the series' median in the series' robust sigmas) and the first difference (in
 * the baseline's sigmas). A point is reported when the forest isolates it (score at least
 * `forestThreshold(sensitivity)`) and it also lies outside the band, k = bandSigmas(sensitivity)
 * sigma from the expected value: the forest ranks unusual combinations, the band keeps "unusual"
 * meaningful on a series without anomalies (a gate one sigma inside the band let the forest
 * confirm the most extreme points of plain noise: a fifth of 1,000-point noise series got an
 * anomaly). Points inside the band score 0; the others score the smaller of their distance in
 * band widths and (s - 0.5) / (threshold - 0.5): 1.0 at the boundary of both, and a lone point,
 * reported from 1.5 on, must stand out to both. Every threshold falls as the sensitivity rises, so
 * a higher sensitivity flags every point a lower one flags.
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
  // Reported only outside the band (k sigma from the expected value, a base score of 1): only those
  // candidates need the forest's score (usually a few percent of the points, which makes a million
  // points affordable).
  let m = 0;
  const candidates = new Int32Array(n);
  for (let i = 0; i < n; i++) if (base.score[i] >= 1) candidates[m++] = i;
  const raw = forest.score(data, candidates.subarray(0, m));
  const score = new Float64Array(n);
  for (let q = 0; q < m; q++) {
    const i = candidates[q];
    // Both must say so: the smaller of the two normalised scores (also for a lone point's 1.5).
    score[i] = Math.min(base.score[i], Math.max(0, (raw[i] - 0.5) / (t - 0.5)));
  }
  return {
    score,
    expected: base.expected,
    band: base.band,
    baseline: base.baseline,
    used: {
      ...base.used,
      trees,
      subsample: forest.psi,
      height_limit: forest.heightLimit,
      score_threshold: t,
      seed: params.seed,
    },
  };
}
