import { Controller, Get, Query, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SseService } from './sse.service.js';
import { Access } from '../auth/access.js';

@ApiTags('streams')
@Controller('api/v1/metrics')
export class StreamingController {
  constructor(private readonly sse: SseService) {}

  @Get('stream')
  @Access('read', { rate: 'stream', tokenInQuery: true })
  @ApiOperation({
    summary:
      'Server-Sent Events: every matching point as it commits, or with `interval` the latest value (or a bucket aggregate) per series every interval',
  })
  @ApiProduces('text/event-stream')
  @ApiQuery({ name: 'metrics', required: false, description: 'comma-separated metric names (default: all)' })
  @ApiQuery({ name: 'sources', required: false, description: 'comma-separated sources (default: all)' })
  @ApiQuery({ name: 'tags', required: false, isArray: true, description: 'key:value, repeatable' })
  @ApiQuery({ name: 'interval', required: false, description: 'seconds (1 to 3600) or 5s, 1m; absent: every point' })
  @ApiQuery({
    name: 'aggregation',
    required: false,
    enum: ['last', 'avg', 'min', 'max', 'sum', 'count'],
    description: 'with interval; default last',
  })
  @ApiQuery({
    name: 'last_event_id',
    required: false,
    description: 'as the Last-Event-ID header, for clients that cannot set it',
  })
  stream(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Query() q: Record<string, unknown>) {
    return this.sse.open(req, reply, q);
  }
}
