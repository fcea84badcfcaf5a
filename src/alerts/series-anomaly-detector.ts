import { Injectable } from '@nestjs/common';
import {
  AnomalyDetectionRequest,
  AnomalyDetector,
  anomalousPoints,
  DETECTOR_ALGORITHMS,
  DetectedAnomaly,
} from './anomaly-detector.js';
import { AlertsRepository } from './alerts.repository.js';

/** Newest points one anomaly rule reads per series and evaluation (the job runs every few seconds). */
export const MAX_EVALUATION_POINTS = 20_000;

/** The AnomalyDetector of anomaly rules: src/anomalies' detectors over the stored points of one series. */
@Injectable()
export class SeriesAnomalyDetector implements AnomalyDetector {
  readonly algorithms = DETECTOR_ALGORITHMS;

  constructor(private readonly repo: AlertsRepository) {}

  async detect(req: AnomalyDetectionRequest): Promise<DetectedAnomaly[]> {
    const points = (await this.repo.points(req.seriesId, req.from, req.to, MAX_EVALUATION_POINTS)).filter(
      (p) => !Number.isNaN(p.value),
    );
    const times = Float64Array.from(points, (p) => p.time),
      values = Float64Array.from(points, (p) => p.value);
    return anomalousPoints(times, values, req);
  }
}
