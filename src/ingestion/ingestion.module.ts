import { Module } from '@nestjs/common';
import { IngestionController } from './ingestion.controller.js';
import { IngestionService } from './ingestion.service.js';
import { LineProtocolController } from './line-protocol.controller.js';
import { ProtocolsController } from './protocols.controller.js';

@Module({
  controllers: [IngestionController, LineProtocolController, ProtocolsController],
  providers: [IngestionService],
  exports: [IngestionService],
})
export class IngestionModule {}
