import { Algorithm, ALGORITHMS, detectorFor } from '../anomalies/detectors.js';
import { isFlagged } from '../anomalies/episodes.js';
import { typicalStep } from '../anomalies/robust.js';
import type { Direction } from './rule-spec.js';

/**
 * How anomaly rules find anomalies: an injection token and a contract, so that alert evaluation
 * does not depend on how detection is done. Bound by default to the detectors of src/anomalies
 * (auto, isolation_forest, zscore, mad, seasonal), run on the stored points of one series.
 */

/** Nest injection token of the AnomalyDetector that anomaly rules use. */
export const ANOMALY_DETECTOR = Symbol.for('timescope.AnomalyDetector');

export interface AnomalyDetectionRequest {
  metric: string;
  /** One stored series (alerts are per series). */
  seriesId: number;
  /** Points to read, (from, to] in epoch ms: the points to judge and, before them, their baseline. */
  from: number;
  to: number;
  /** The trailing window each point is judged against. */
  windowMs: number;
  /** One of `algorithms`. */
  algorithm: string;
  /** 0 < s <= 1; higher finds more. */
  sensitivity: number;
  direction: Direction;
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
   * Every point of the range that is anomalous (score >= 1): each point, not only the start of
   * an episode, because alert evaluation needs to know whether the condition still holds.
   */
  detect(req: AnomalyDetectionRequest): Promise<DetectedAnomaly[]>;
}

export const DETECTOR_ALGORITHMS: readonly string[] = ALGORITHMS;

/**
 * The anomalous points of one series (times ascending): each point is scored by the detector of
 * src/anomalies against its trailing window (`windowMs`, turned into points with the series' own
 * sampling step), and kept when it is past the boundary in the asked direction. Pure; seeded, so
 * one evaluation gives one answer.
 */
export function anomalousPoints(
  times: Float64Array,
  values: Float64Array,
  q: { algorithm: string; sensitivity: number; direction: Direction; windowMs: number },
): DetectedAnomaly[] {
  const n = values.length;
  if (n === 0) return [];
  const step = typicalStep(times);
  const window = step > 0 ? Math.max(3, Math.round(q.windowMs / step)) : undefined;
  const series = { times, values };
  const det = detectorFor(q.algorithm as Algorithm)(series, { sensitivity: q.sensitivity, seed: 1, window });
  const out: DetectedAnomaly[] = [];
  for (let i = 0; i < n; i++)
    if (isFlagged(series, det, i, { direction: q.direction }))
      out.push({ timestamp: times[i], value: values[i], score: det.score[i] });
  return out;
}
