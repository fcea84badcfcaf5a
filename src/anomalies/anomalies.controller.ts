import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { AnomaliesService } from './anomalies.service.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import { AnomalyRequest, AnomalyResult } from '../openapi/schemas/analytics.js';

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
  @JsonBody(AnomalyRequest, {
    example: {
      metric: 'cpu_usage',
      source: 'fl_server',
      from: 'now-1h',
      algorithm: 'isolation_forest',
      sensitivity: 0.5,
    },
  })
  @Answer(200, AnomalyResult)
  detect(@Body() body: unknown) {
    return this.anomalies.detect(body);
  }
}
