import { Injectable } from '@nestjs/common';
import { AnomalyDetectionRequest, AnomalyDetector, DetectedAnomaly, robustScores } from './anomaly-detector.js';
import { AlertsRepository } from './alerts.repository.js';

/**
 * The default AnomalyDetector: robust z-scores (median and MAD) over the trailing window of one
 * series. `auto` means `mad` here; the full detectors of src/anomalies replace this one when they
 * are bound to ANOMALY_DETECTOR.
 */
@Injectable()
export class MadAnomalyDetector implements AnomalyDetector {
  readonly algorithms = ['auto', 'mad'] as const;

  constructor(private readonly repo: AlertsRepository) {}

  async detect(req: AnomalyDetectionRequest): Promise<DetectedAnomaly[]> {
    const points = (await this.repo.points(req.seriesId, req.from - 1, req.to - 1)).filter((p) => !Number.isNaN(p.value));
    const { scores } = robustScores(points.map((p) => p.value), req.sensitivity, req.direction);
    const out: DetectedAnomaly[] = [];
    for (let i = 0; i < points.length; i++) if (scores[i] >= 1) out.push({ timestamp: points[i].time, value: points[i].value, score: scores[i] });
    return out;
  }
}
