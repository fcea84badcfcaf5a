import { Module } from '@nestjs/common';
import { QueryModule } from '../query/query.module.js';
import { ExportController } from './export.controller.js';
import { ExportRepository } from './export.repository.js';
import { ExportService } from './export.service.js';
import { PointReader } from './point-reader.js';

@Module({
  imports: [QueryModule],
  controllers: [ExportController],
  providers: [PointReader, ExportRepository, ExportService],
  exports: [PointReader],
})
export class ExportModule {}
