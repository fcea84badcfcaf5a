import { Module } from '@nestjs/common';
import { EventsController } from './events.controller.js';
import { EventsRepository } from './events.repository.js';
import { EventsService } from './events.service.js';
import { PipelineStatusController } from './pipeline-status.controller.js';
import { PipelineStatusRepository } from './pipeline-status.repository.js';
import { PipelineStatusService } from './pipeline-status.service.js';

/** Events and logs (one time-partitioned table), the policy-event and log views, pipeline status reports. */
@Module({
  controllers: [EventsController, PipelineStatusController],
  providers: [EventsRepository, EventsService, PipelineStatusRepository, PipelineStatusService],
  exports: [EventsService, PipelineStatusService],
})
export class EventsModule {}
