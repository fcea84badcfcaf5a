import { bandSigmas, defaultWindow, Detection, DetectorParams, SeriesInput } from './detector.js';
import { chooseLevel, flooredScale, localLevel, scaleFloor, trailingMeanStd, typicalStep } from './robust.js';

/**
 * Rolling z-score: distance from the mean of the trailing window in standard deviations of that
 * window. The classic, non-robust baseline (a big spike widens its own window's deviation for a
 * while); `mad` is the robust variant. On a series that is smooth at a shorter scale (where `mad`
 * follows a local level, see `levelBaseline`), the mean follows the same local level, computed
 * from block means, and the deviation is that of the distances from it over the trailing window.
 */
export function zscoreDetector(series: SeriesInput, params: DetectorParams): Detection {
  const { values } = series;
  const n = values.length;
  const window = params.window ?? defaultWindow(n, typicalStep(series.times));
  const k = bandSigmas(params.sensitivity);
  const { levelBlock } = chooseLevel(values, window);
  let mean: Float64Array, std: Float64Array;
  if (levelBlock === null) ({ mean, std } = trailingMeanStd(values, window));
  else {
    mean = localLevel(values, levelBlock, 'mean');
    const residual = new Float64Array(n);
    for (let i = 0; i < n; i++) residual[i] = values[i] - mean[i];
    const spread = trailingMeanStd(residual, window);
    // The spread of the distances around their own trailing mean (a level's bias does not widen the band).
    std = spread.std;
  }
  const floor = scaleFloor(values);
  const score = new Float64Array(n),
    band = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    band[i] = k * flooredScale(std[i], floor);
    score[i] = Math.abs(values[i] - mean[i]) / band[i];
  }
  return { score, expected: mean, band, baseline: mean, used: { window, level_block: levelBlock, band_sigmas: k } };
}
