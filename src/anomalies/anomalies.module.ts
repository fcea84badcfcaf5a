import { Module } from '@nestjs/common';
import { ExportModule } from '../export/export.module.js';
import { QueryModule } from '../query/query.module.js';
import { AnomaliesController } from './anomalies.controller.js';
import { AnomaliesService } from './anomalies.service.js';

@Module({ imports: [QueryModule, ExportModule], controllers: [AnomaliesController], providers: [AnomaliesService] })
export class AnomaliesModule {}
