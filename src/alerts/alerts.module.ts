import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { AlertRulesController } from './alert-rules.controller.js';
import { AlertRulesRepository } from './alert-rules.repository.js';
import { AlertRulesService } from './alert-rules.service.js';
import { AlertsController } from './alerts.controller.js';
import { AlertsRepository } from './alerts.repository.js';
import { AlertsService } from './alerts.service.js';
import { ANOMALY_DETECTOR } from './anomaly-detector.js';
import { RuleEvaluator } from './rule-evaluator.service.js';
import { SeriesAnomalyDetector } from './series-anomaly-detector.js';

/**
 * Alert rules (threshold and anomaly), their evaluation job, alerts with acknowledge, and webhook
 * notifications. Anomaly rules go through ANOMALY_DETECTOR (src/anomalies' detectors on stored points).
 */
@Module({
  imports: [EventsModule],
  controllers: [AlertRulesController, AlertsController],
  providers: [
    AlertRulesRepository,
    AlertsRepository,
    AlertsService,
    AlertRulesService,
    RuleEvaluator,
    SeriesAnomalyDetector,
    { provide: ANOMALY_DETECTOR, useExisting: SeriesAnomalyDetector },
  ],
  exports: [AlertsService, AlertRulesService],
})
export class AlertsModule {}
