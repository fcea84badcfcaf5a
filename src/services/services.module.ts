import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { ServiceRegistry } from './service-registry.service.js';
import { ServicesController } from './services.controller.js';
import { ServicesRepository } from './services.repository.js';

/** Service status: registration, TTL expiry to unknown, status-change events, uptime. */
@Module({ imports: [EventsModule], controllers: [ServicesController], providers: [ServicesRepository, ServiceRegistry], exports: [ServiceRegistry] })
export class ServicesModule {}
