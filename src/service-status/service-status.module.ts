import { Module } from '@nestjs/common';
import { CollectorModule } from '../collector/collector.module.js';
import { EventsModule } from '../events/events.module.js';
import { ServiceRegistry } from './service-registry.service.js';
import { ServiceStatusController } from './service-status.controller.js';
import { ServiceStatusRepository } from './service-status.repository.js';

/** Service status: registration, TTL expiry to unknown, status-change events, uptime. */
@Module({
  imports: [EventsModule, CollectorModule],
  controllers: [ServiceStatusController],
  providers: [ServiceStatusRepository, ServiceRegistry],
  exports: [ServiceRegistry],
})
export class ServiceStatusModule {}
