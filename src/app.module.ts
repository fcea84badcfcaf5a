import { DynamicModule, Module } from '@nestjs/common';
import { AlertsModule } from './alerts/alerts.module.js';
import { AnomaliesModule } from './anomalies/anomalies.module.js';
import { AuthModule } from './auth/auth.module.js';
import { AppConfig } from './config/config.js';
import { CollectorModule } from './collector/collector.module.js';
import { ConfigModule } from './config/config.module.js';
import { DatabaseModule } from './database/database.module.js';
import { EventsModule } from './events/events.module.js';
import { ExportModule } from './export/export.module.js';
import { IngestionModule } from './ingestion/ingestion.module.js';
import { JobsModule } from './jobs/jobs.module.js';
import { MonitoringModule } from './monitoring/monitoring.module.js';
import { PerformanceModule } from './performance/performance.module.js';
import { PipelinesModule } from './pipelines/pipelines.module.js';
import { QueryModule } from './query/query.module.js';
import { ReaderModule } from './reader/reader.module.js';
import { RetentionModule } from './retention/retention.module.js';
import { SettingsModule } from './settings/settings.module.js';
import { ServiceStatusModule } from './service-status/service-status.module.js';
import { StatisticsModule } from './statistics/statistics.module.js';
import { StorageModule } from './storage/storage.module.js';
import { StreamingModule } from './streaming/streaming.module.js';
import { SystemModule } from './system/system.module.js';
import { WebModule } from './web/web.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule,
        AuthModule,
        JobsModule,
        StorageModule,
        SystemModule,
        IngestionModule,
        QueryModule,
        WebhooksModule,
        PipelinesModule,
        SettingsModule,
        RetentionModule,
        CollectorModule,
        PerformanceModule,
        StatisticsModule,
        AnomaliesModule,
        ExportModule,
        EventsModule,
        ServiceStatusModule,
        StreamingModule,
        AlertsModule,
        ReaderModule,
        MonitoringModule,
        WebModule,
      ],
    };
  }
}
