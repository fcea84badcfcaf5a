/**
 * How anomaly rules find anomalies: an injection token and a contract, so that the full
 * detectors (src/anomalies: isolation forest, zscore, mad, seasonal) can be plugged in for the
 * default below without touching alert evaluation.
 */

/** Nest injection token of the AnomalyDetector that anomaly rules use. */
export const ANOMALY_DETECTOR = Symbol.for('timescope.AnomalyDetector');

export interface AnomalyDetectionRequest {
  metric: string;
  /** One stored series (alerts are per series). */
  seriesId: number;
  /** Trailing window [from, to) in epoch ms: the baseline and the points to judge. */
  from: number;
  to: number;
  /** One of `algorithms`. */
  algorithm: string;
  /** 0 < s <= 1; higher finds more. */
  sensitivity: number;
  direction: 'both' | 'above' | 'below';
}

export interface DetectedAnomaly {
  timestamp: number;
  value: number;
  /** Normalised so that 1.0 is the decision boundary. */
  score: number;
}

export interface AnomalyDetector {
  /** Algorithm names this detector accepts; the first is the default. */
  readonly algorithms: readonly string[];
  /**
   * Every point of the window that is anomalous (score >= 1): each point, not only the start of
   * an episode, because alert evaluation needs to know whether the condition still holds.
   */
  detect(req: AnomalyDetectionRequest): Promise<DetectedAnomaly[]>;
}

/** Below this many points a window says nothing. */
export const MIN_POINTS = 10;
/** 1.4826 × MAD estimates the standard deviation of normal data. */
const MAD_TO_SIGMA = 1.4826;
/** √(π/2) × mean absolute deviation estimates it too; used when MAD is 0 (quantised or mostly flat series). */
const MEAN_AD_TO_SIGMA = 1.2533;

/**
 * How many robust standard deviations from the median count as anomalous: sensitivity 1 → 3,
 * 0.5 (the default) → 5, towards 0 → 7 (the same scale as src/anomalies' bands).
 */
export const thresholdSigmas = (sensitivity: number) => 3 + 4 * (1 - sensitivity);

export interface RobustScores {
  median: number;
  /** Robust standard deviation, floored so that a flat series does not divide by zero. */
  scale: number;
  /** Per value: |deviation| / (scale × threshold) in the requested direction; >= 1 is anomalous. */
  scores: Float64Array;
}

function median(sorted: Float64Array): number {
  const n = sorted.length, h = n >> 1;
  return n % 2 ? sorted[h] : (sorted[h - 1] + sorted[h]) / 2;
}

/**
 * Robust z-scores over one window: the median and MAD of the window itself are the baseline, so a
 * minority of outliers does not move it (Iglewicz & Hoaglin's modified z-score). Pure.
 */
export function robustScores(values: ArrayLike<number>, sensitivity: number, direction: 'both' | 'above' | 'below'): RobustScores {
  const n = values.length;
  const scores = new Float64Array(n);
  if (n < MIN_POINTS) return { median: NaN, scale: NaN, scores };
  const sorted = Float64Array.from(values).sort();
  const m = median(sorted);
  const dev = new Float64Array(n);
  let sumAbs = 0;
  for (let i = 0; i < n; i++) {
    dev[i] = Math.abs(values[i] - m);
    sumAbs += dev[i];
  }
  const mad = median(dev.slice().sort());
  const floor = Math.max(Math.abs(m) * 1e-9, 1e-12);
  const scale = Math.max(MAD_TO_SIGMA * mad, mad === 0 ? MEAN_AD_TO_SIGMA * (sumAbs / n) : 0, floor);
  const k = thresholdSigmas(sensitivity);
  for (let i = 0; i < n; i++) {
    const z = (values[i] - m) / scale;
    scores[i] = direction === 'above' && z < 0 ? 0 : direction === 'below' && z > 0 ? 0 : Math.abs(z) / k;
  }
  return { median: m, scale, scores };
}
