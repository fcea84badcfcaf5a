import { Detection, Detector, DetectorParams, SeriesInput } from './detector.js';
import { forestDetector } from './forest-detector.js';
import { madDetector } from './mad.js';
import { detectSeasonality, seasonalDetector } from './seasonal.js';
import { zscoreDetector } from './zscore.js';

export const ALGORITHMS = ['auto', 'isolation_forest', 'zscore', 'mad', 'seasonal'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/**
 * `auto`, the default for a series nobody has looked at: the seasonal baseline when the series has
 * a daily or weekly cycle, else the robust trailing median (mad). Both are robust to the outliers
 * they look for and never flag a fixed share of points.
 */
export function autoDetector(series: SeriesInput, params: DetectorParams): Detection {
  const season = detectSeasonality(series);
  const det = season ? seasonalDetector(series, params, season) : madDetector(series, params);
  return { ...det, used: { ...det.used, chosen: season ? 'seasonal' : 'mad' } };
}

const DETECTORS: Record<Algorithm, Detector> = {
  auto: autoDetector,
  isolation_forest: forestDetector,
  zscore: zscoreDetector,
  mad: madDetector,
  seasonal: (s, p) => seasonalDetector(s, p),
};

/** The detector for an algorithm name (already validated against ALGORITHMS). */
export function detectorFor(algorithm: Algorithm): Detector {
  return DETECTORS[algorithm];
}
