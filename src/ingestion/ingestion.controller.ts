import { Body, Controller, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiConsumes, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { IngestionService } from './ingestion.service.js';
import { Access } from '../auth/access.js';
import { AVRO_CONTENT_TYPES } from './avro.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import { AppMetricsBody, BatchesBody, IngestReply, SubmitBody } from '../openapi/schemas/ingest.js';

const precisionDoc = {
  name: 'precision',
  required: false,
  enum: ['s', 'ms', 'us', 'ns'],
  description: 'Unit of numeric timestamps (default ms)',
};

@ApiTags('ingest')
@Controller()
export class IngestionController {
  constructor(private readonly ingestion: IngestionService) {}

  @Post('api/v1/metrics')
  @Access('ingest')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Submit metrics: {source, timestamp?, metrics: [{name, value, unit?, tags?, timestamp?}]} or {service, metric_type, value}',
  })
  @ApiQuery(precisionDoc)
  @JsonBody(SubmitBody, {
    example: {
      source: 'fl_server',
      metrics: [{ name: 'cpu_usage', value: 45.2, unit: 'percent', tags: { host: 'fl-server-01' } }],
    },
  })
  @Answer(200, IngestReply, 'Committed')
  submit(@Body() body: unknown, @Query('precision') precision?: string) {
    return this.ingestion.submit(body, precision);
  }

  @Post('api/v1/metrics/batch')
  @Access('ingest')
  @HttpCode(200)
  @ApiOperation({ summary: 'Submit several batches at once: {batches: [...]}; all or nothing' })
  @ApiQuery(precisionDoc)
  @JsonBody(BatchesBody)
  @Answer(200, IngestReply, 'Committed (all batches)')
  submitBatches(@Body() body: unknown, @Query('precision') precision?: string) {
    return this.ingestion.submitBatches(body, precision);
  }

  @Post('api/v2/app/:appId/metrics')
  @Access('ingest', { contentTypes: ['application/json', ...AVRO_CONTENT_TYPES] })
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Per-app ingest (metrics-collection-api v2): JSON {metrics: [{name, value, timestamp (ms), tags, profileId}]}, or Avro (avro/binary, application/avro): an object container file or an array of Metric records',
  })
  @ApiConsumes('application/json', ...AVRO_CONTENT_TYPES)
  @JsonBody(AppMetricsBody, {
    description: 'JSON as below, or Avro (an object container file or an array of Metric records)',
  })
  @Answer(200, IngestReply, 'Committed')
  submitApp(@Param('appId') appId: string, @Body() body: unknown) {
    return this.ingestion.submitApp(appId, body);
  }
}
