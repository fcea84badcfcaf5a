import { bandSigmas, defaultWindow, Detection, DetectorParams, SeriesInput } from './detector.js';
import { flooredScale, scaleFloor, trailingMeanStd, typicalStep } from './robust.js';

/**
 * Rolling z-score: distance from the mean of the trailing window in standard deviations of that
 * window. The classic, non-robust baseline (a big spike widens its own window's deviation for a
 * while); `mad` is the robust variant.
 */
export function zscoreDetector(series: SeriesInput, params: DetectorParams): Detection {
  const { values } = series;
  const n = values.length;
  const window = params.window ?? defaultWindow(n, typicalStep(series.times));
  const k = bandSigmas(params.sensitivity);
  const { mean, std } = trailingMeanStd(values, window);
  const floor = scaleFloor(values);
  const score = new Float64Array(n), band = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    band[i] = k * flooredScale(std[i], floor);
    score[i] = Math.abs(values[i] - mean[i]) / band[i];
  }
  return { score, expected: mean, band, used: { window, band_sigmas: k } };
}
