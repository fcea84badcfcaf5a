import { Module } from '@nestjs/common';
import { CollectorController } from './collector.controller.js';
import { CollectorService } from './collector.service.js';

/** Host and NVIDIA GPU collector: live cache, persisted as ordinary series through the one write path. */
@Module({ controllers: [CollectorController], providers: [CollectorService], exports: [CollectorService] })
export class CollectorModule {}
