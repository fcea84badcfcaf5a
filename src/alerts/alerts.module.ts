import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { AlertRulesController } from './alert-rules.controller.js';
import { AlertRulesRepository } from './alert-rules.repository.js';
import { AlertRulesService } from './alert-rules.service.js';
import { AlertsController } from './alerts.controller.js';
import { AlertsRepository } from './alerts.repository.js';
import { AlertsService } from './alerts.service.js';
import { ANOMALY_DETECTOR } from './anomaly-detector.js';
import { MadAnomalyDetector } from './mad-detector.js';
import { RuleEvaluator } from './rule-evaluator.service.js';

/**
 * Alert rules (threshold and anomaly), their evaluation job, alerts with acknowledge, and webhook
 * notifications. ANOMALY_DETECTOR is the default robust (MAD) detector; bind src/anomalies'
 * service there to evaluate anomaly rules with the full detectors.
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
    MadAnomalyDetector,
    { provide: ANOMALY_DETECTOR, useExisting: MadAnomalyDetector },
  ],
  exports: [AlertsService, AlertRulesService],
})
export class AlertsModule {}
