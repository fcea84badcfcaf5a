import { Module } from '@nestjs/common';
import { StreamingModule } from '../streaming/streaming.module.js';
import { CollectorController } from './collector.controller.js';
import { CollectorService } from './collector.service.js';
import { MonitoringGateway } from './monitoring.gateway.js';

/**
 * Host and NVIDIA GPU collector: live cache, persisted as ordinary series through the one write
 * path, and streamed as it samples over the monitoring WebSocket.
 */
@Module({
  imports: [StreamingModule],
  controllers: [CollectorController],
  providers: [CollectorService, MonitoringGateway],
  exports: [CollectorService],
})
export class CollectorModule {}
