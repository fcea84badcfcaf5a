import { Controller, Get, Query, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SseService } from './sse.service.js';
import { Access } from '../auth/access.js';
import { MediaAnswer } from '../openapi/decorators.js';

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
  @ApiQuery({ name: 'metric', required: false, description: 'as metrics' })
  @ApiQuery({ name: 'source', required: false, description: 'as sources' })
  @ApiQuery({
    name: 'access_token',
    required: false,
    description: 'the API key, for clients that cannot set Authorization (EventSource)',
  })
  @MediaAnswer(
    200,
    ['text/event-stream'],
    'Server-Sent Events, one JSON point per event',
    'id: 3f9a01c2.1042\ndata: {"metric":"cpu_usage","value":45.2,"timestamp":"2024-01-15T10:30:00.000Z","source":"fl_server","unit":"percent","tags":{}}\n\n',
  )
  stream(@Req() req: FastifyRequest, @Res() reply: FastifyReply, @Query() q: Record<string, unknown>) {
    return this.sse.open(req, reply, q);
  }
}
