import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ExportService, StreamedExport } from './export.service.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody, MediaAnswer } from '../openapi/decorators.js';
import { ExportList, ExportRequest, ExportStatus } from '../openapi/schemas/analytics.js';

@ApiTags('analytics')
@Controller()
export class ExportController {
  constructor(private readonly exports: ExportService) {}

  private send(reply: FastifyReply, x: StreamedExport): void {
    reply
      .header('Content-Type', x.contentType)
      .header('Content-Disposition', `attachment; filename="${x.fileName}"`)
      .send(x.body);
    this.exports.watch(x, reply.raw, `${reply.request.ip}:${reply.request.socket.remotePort ?? '?'}`);
  }

  @Get('api/v1/metrics/export')
  @Access('read')
  @ApiOperation({ summary: 'Streamed export of stored points (or buckets) as csv, json, ndjson or parquet' })
  @ApiQuery({ name: 'format', required: false, enum: ['csv', 'json', 'ndjson', 'parquet'] })
  @ApiQuery({ name: 'metric', required: true })
  @ApiQuery({ name: 'source', required: false })
  @ApiQuery({ name: 'from', required: true })
  @ApiQuery({ name: 'to', required: true })
  @ApiQuery({ name: 'granularity', required: false })
  @ApiQuery({ name: 'aggregation', required: false, enum: ['avg', 'sum', 'min', 'max', 'count', 'first', 'last'] })
  @ApiQuery({ name: 'tags', required: false, isArray: true })
  @ApiQuery({ name: 'metrics', required: false, description: 'several metrics, comma-separated (instead of metric)' })
  @ApiQuery({ name: 'start_date', required: false, description: 'as from' })
  @ApiQuery({ name: 'end_date', required: false, description: 'as to' })
  @MediaAnswer(
    200,
    ['text/csv', 'application/json', 'application/x-ndjson', 'application/vnd.apache.parquet'],
    'The file, streamed (Content-Disposition: attachment)',
  )
  async stream(@Query() q: Record<string, unknown>, @Res() reply: FastifyReply) {
    this.send(reply, await this.exports.stream(q, { headersOnly: reply.request.method === 'HEAD' }));
  }

  @Post('api/v1/metrics/exports')
  @Access('read')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Starts an asynchronous export (same parameters as GET /metrics/export, or metrics: [...]); follow status_url, then download_url',
  })
  @JsonBody(ExportRequest, {
    example: { metrics: ['cpu_usage', 'memory_usage'], from: 'now-7d', to: 'now', format: 'parquet' },
  })
  @Answer(202, ExportStatus, 'Started: follow status_url')
  start(@Body() body: unknown) {
    return this.exports.start(body);
  }

  @Get('api/v1/metrics/exports')
  @Access('read')
  @ApiOperation({ summary: 'Recent asynchronous exports' })
  @Answer(200, ExportList)
  list() {
    return this.exports.list();
  }

  @Get('api/v1/metrics/exports/:id')
  @Access('read')
  @ApiOperation({ summary: 'Status and progress of an asynchronous export' })
  @Answer(200, ExportStatus)
  status(@Param('id') id: string) {
    return this.exports.status(id);
  }

  @Get('api/v1/metrics/exports/:id/download')
  @Access('read')
  @ApiOperation({ summary: 'The file of a completed asynchronous export' })
  @MediaAnswer(
    200,
    ['text/csv', 'application/json', 'application/x-ndjson', 'application/vnd.apache.parquet'],
    'The file (409 while it is not completed)',
  )
  async download(@Param('id') id: string, @Res() reply: FastifyReply) {
    this.send(reply, await this.exports.download(id));
  }

  @Get(['api/v1/export/metrics', 'export/metrics']) // also at collector-api.md's first base URL, as its example asks
  @Access('read')
  @ApiOperation({
    summary:
      'The reference form (collector-api.md, first half): start_date, end_date, format (json|csv|ndjson|parquet), metrics (comma-separated; all when absent)',
  })
  @ApiQuery({ name: 'start_date', required: true })
  @ApiQuery({ name: 'end_date', required: true })
  @ApiQuery({ name: 'format', required: false })
  @ApiQuery({ name: 'metrics', required: false })
  @Answer(200, ExportStatus, 'Completed within 5 s')
  @Answer(202, ExportStatus, 'Still running: follow status_url')
  async reference(@Query() q: Record<string, unknown>, @Res() reply: FastifyReply) {
    const r = await this.exports.startAndWait(q);
    reply.status(r.status).send(r.body);
  }
}
