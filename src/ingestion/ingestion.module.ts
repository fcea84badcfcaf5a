import { Module } from '@nestjs/common';
import { IngestionController } from './ingestion.controller.js';
import { IngestionService } from './ingestion.service.js';
import { LineProtocolController } from './line-protocol.controller.js';

@Module({ controllers: [IngestionController, LineProtocolController], providers: [IngestionService], exports: [IngestionService] })
export class IngestionModule {}
