import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AnomaliesService } from './anomalies.service.js';
import { Access } from '../auth/access.js';

@ApiTags('analytics')
@Controller('api/v1/metrics')
export class AnomaliesController {
  constructor(private readonly anomalies: AnomaliesService) {}

  @Post('anomalies')
  @Access('read')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Anomaly detection over stored points or buckets: one anomaly per episode, scored so 1.0 is the boundary',
  })
  @ApiBody({
    schema: {
      type: 'object',
      required: ['metric'],
      properties: {
        metric: { type: 'string' },
        source: { type: 'string' },
        tags: { type: 'object', additionalProperties: { type: 'string' } },
        from: { type: 'string' },
        to: { type: 'string' },
        algorithm: { type: 'string', enum: ['auto', 'isolation_forest', 'zscore', 'mad', 'seasonal'] },
        sensitivity: { type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 1, default: 0.5 },
        granularity: { type: 'string' },
        aggregation: { type: 'string', enum: ['avg', 'sum', 'min', 'max', 'count', 'first', 'last'] },
        direction: { type: 'string', enum: ['both', 'above', 'below'] },
        min_deviation: { oneOf: [{ type: 'number' }, { type: 'string', example: '10%' }] },
        window: { type: 'string', example: '1d' },
        seed: { type: 'integer' },
        trees: { type: 'integer' },
        subsample: { type: 'integer' },
      },
    },
  })
  detect(@Body() body: unknown) {
    return this.anomalies.detect(body);
  }
}
