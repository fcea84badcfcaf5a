import { bandSigmas, defaultWindow, Detection, DetectorParams, SeriesInput } from './detector.js';
import { flooredScale, levelBaseline, localLevel, scaleFloor, typicalStep } from './robust.js';

/**
 * Robust z-score: distance from the baseline in MAD-sigmas (MAD × 1.4826). The baseline is the
 * trailing median, or the local level of a series that is smooth at a shorter scale
 * (`levelBaseline`: a sine of a few hours is followed, not averaged over a day). Outliers do not
 * move the baseline; the scale is floored by the series' resolution so that a flat or quantised
 * series (MAD = 0) does not flag every small step.
 */
export function madDetector(series: SeriesInput, params: DetectorParams): Detection {
  const { values } = series;
  const n = values.length;
  const window = params.window ?? defaultWindow(n, typicalStep(series.times));
  const k = bandSigmas(params.sensitivity);
  const { center, sigma, levelBlock } = levelBaseline(values, window);
  const floor = scaleFloor(values);
  const score = new Float64Array(n),
    band = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    band[i] = k * flooredScale(sigma[i], floor);
    score[i] = Math.abs(values[i] - center[i]) / band[i];
  }
  // baseline_avg: the mean counterpart of the level (block means instead of medians); the trailing mean otherwise.
  const baseline = levelBlock === null ? undefined : localLevel(values, levelBlock, 'mean');
  return {
    score,
    expected: center,
    band,
    baseline,
    used: { window, level_block: levelBlock, band_sigmas: k, scale_floor: floor },
  };
}
