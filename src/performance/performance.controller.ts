import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { PerformanceService } from './performance.service.js';
import { Access } from '../auth/access.js';
import { Answer } from '../openapi/decorators.js';
import { Performance } from '../openapi/schemas/system.js';

@ApiTags('system')
@Controller('api/v1/system/performance')
export class PerformanceController {
  constructor(private readonly performance: PerformanceService) {}

  @Get()
  @Access('read')
  @ApiOperation({
    summary:
      'Ingestion rate/peak/total/queue, storage size/compression/retention/oldest data, query rate and latency, crossed thresholds',
  })
  @Answer(200, Performance)
  get() {
    return this.performance.performance();
  }
}
