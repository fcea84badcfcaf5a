import { Controller, Get, Query } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { StatisticsService, type SummaryInput } from './statistics.service.js';
import { Access } from '../auth/access.js';
import { Answer } from '../openapi/decorators.js';
import { SummaryResult } from '../openapi/schemas/analytics.js';

@ApiTags('analytics')
@Controller('api/v1/metrics')
export class StatisticsController {
  constructor(private readonly statistics: StatisticsService) {}

  @Get('summary')
  @Access('read')
  @ApiOperation({
    summary: 'Exact statistics of the stored points: count, min, max, avg, median, std_dev (sample), percentiles',
  })
  @ApiQuery({ name: 'metric', required: true })
  @ApiQuery({ name: 'source', required: false })
  @ApiQuery({
    name: 'from',
    required: false,
    description: 'ISO 8601 with zone, epoch ms, now or now-1h (default: to - 1h)',
  })
  @ApiQuery({ name: 'to', required: false, description: 'exclusive (default: now)' })
  @ApiQuery({ name: 'tags', required: false, isArray: true, description: 'key:value, repeatable' })
  @ApiQuery({
    name: 'percentiles',
    required: false,
    description: 'more percentiles besides p50, p90, p95, p99: 75,99.9',
  })
  @Answer(200, SummaryResult)
  summary(@Query() q: SummaryInput) {
    return this.statistics.summary(q);
  }
}
