import { Controller, Get, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Access } from '../auth/access.js';
import { SelfMetrics } from './self-metrics.service.js';
import { MediaAnswer, OpenQuery } from '../openapi/decorators.js';

/** metrics-collection-api-v2.md's Prometheus exposition path; the same text as /api/v1/monitoring/metrics/prometheus. */
@ApiTags('monitoring')
@Controller('prometheus-metrics')
export class PrometheusController {
  constructor(private readonly self: SelfMetrics) {}

  @Get()
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      "Timescope's own metrics in the Prometheus text format 0.0.4 (scrape with a read key: authorization.credentials or basic_auth.password)",
  })
  @MediaAnswer(200, ['text/plain'], 'Prometheus text format 0.0.4', 'timescope_ingest_queue_points 45\n')
  @OpenQuery('a scrape config may add params of its own')
  async get(@Res({ passthrough: true }) reply: FastifyReply) {
    reply.header('content-type', this.self.contentType);
    return this.self.exposition();
  }
}
