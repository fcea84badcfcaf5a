import { bandSigmas, defaultWindow, Detection, DetectorParams, SeriesInput } from './detector.js';
import { flooredScale, scaleFloor, trailingBaseline, typicalStep } from './robust.js';

/**
 * Robust z-score: distance from the trailing median in MAD-sigmas (MAD × 1.4826). Outliers do not
 * move the baseline; the scale is floored by the series' resolution so that a flat or quantised
 * series (MAD = 0) does not flag every small step.
 */
export function madDetector(series: SeriesInput, params: DetectorParams): Detection {
  const { values } = series;
  const n = values.length;
  const window = params.window ?? defaultWindow(n, typicalStep(series.times));
  const k = bandSigmas(params.sensitivity);
  const { center, sigma } = trailingBaseline(values, window);
  const floor = scaleFloor(values);
  const score = new Float64Array(n), band = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    band[i] = k * flooredScale(sigma[i], floor);
    score[i] = Math.abs(values[i] - center[i]) / band[i];
  }
  return { score, expected: center, band, used: { window, band_sigmas: k, scale_floor: floor } };
}
