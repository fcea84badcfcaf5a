import { Module } from '@nestjs/common';
import { QueryModule } from '../query/query.module.js';
import { StreamingModule } from '../streaming/streaming.module.js';
import { MonitoringController } from './monitoring.controller.js';
import { MonitoringService } from './monitoring.service.js';
import { PrometheusController } from './prometheus.controller.js';
import { SelfMetrics } from './self-metrics.service.js';
import { SelfMetricsRepository } from './self-metrics.repository.js';

/** Self-metrics (Prometheus exposition, stored as points) and the monitoring API built on them. */
@Module({
  imports: [QueryModule, StreamingModule],
  controllers: [PrometheusController, MonitoringController],
  providers: [SelfMetrics, SelfMetricsRepository, MonitoringService],
  exports: [SelfMetrics],
})
export class MonitoringModule {}
