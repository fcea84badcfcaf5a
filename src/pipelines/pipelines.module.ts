import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { PipelineDefinitions } from './pipeline-definitions.js';
import { PipelineRunner } from './pipeline-runner.service.js';
import { PipelinesController } from './pipelines.controller.js';
import { PipelinesRepository } from './pipelines.repository.js';
import { PipelinesService } from './pipelines.service.js';

/** Saved data pipelines: filter, aggregate in PostgreSQL, transform, deliver; scheduled and dry-runnable. */
@Module({
  imports: [EventsModule],
  controllers: [PipelinesController],
  providers: [PipelinesRepository, PipelineDefinitions, PipelineRunner, PipelinesService],
  exports: [PipelinesService, PipelineRunner],
})
export class PipelinesModule {}
