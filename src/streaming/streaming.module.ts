import { Module } from '@nestjs/common';
import { MetricsGateway } from './metrics.gateway.js';
import { SseService } from './sse.service.js';
import { StreamHub } from './stream-hub.js';
import { StreamingController } from './streaming.controller.js';
import { StreamingRepository } from './streaming.repository.js';

/** Live streams of committed points: WebSocket /ws/metrics and SSE /api/v1/metrics/stream. */
@Module({
  controllers: [StreamingController],
  providers: [StreamHub, StreamingRepository, SseService, MetricsGateway],
  exports: [StreamHub],
})
export class StreamingModule {}
