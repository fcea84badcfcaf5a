import { Body, Controller, Get, Header, HttpCode, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { QueryInput } from './query-spec.js';
import { QueryService } from './query.service.js';
import { queryAnswerJson } from './query.serialization.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import {
  MetricNames,
  MultiQueryBody,
  MultiQueryResult,
  QueryResult,
  SourceNames,
  TagCatalogue,
} from '../openapi/schemas/query.js';

@ApiTags('query')
@Controller('api/v1/metrics')
export class QueryController {
  constructor(private readonly queries: QueryService) {}

  @Get('query')
  @Access('read')
  @ApiOperation({ summary: 'Time-series query: buckets of one metric with aggregation, fill and tag filters' })
  @ApiQuery({ name: 'metric', required: true })
  @ApiQuery({ name: 'source', required: false })
  @ApiQuery({
    name: 'from',
    required: false,
    description: 'ISO 8601 with zone, epoch ms, now or now-1h (default: to - 1h)',
  })
  @ApiQuery({ name: 'to', required: false, description: 'exclusive (default: now)' })
  @ApiQuery({ name: 'granularity', required: false, description: 'auto (default) or Ns, Nm, Nh, Nd, Nw' })
  @ApiQuery({ name: 'aggregation', required: false, enum: ['avg', 'sum', 'min', 'max', 'count', 'first', 'last'] })
  @ApiQuery({ name: 'fill', required: false, enum: ['none', 'null', 'zero', 'previous', 'linear'] })
  @ApiQuery({
    name: 'tags',
    required: false,
    isArray: true,
    description: 'key:value, repeatable; the same key twice means either value',
  })
  @ApiQuery({
    name: 'group_by',
    required: false,
    description: 'source and/or tag keys, comma-separated: one answer per group in `groups`',
  })
  @Answer(200, QueryResult)
  @Header('content-type', 'application/json; charset=utf-8') // written by queryAnswerJson: a day of buckets is most of the answer
  async query(@Query() q: QueryInput): Promise<Buffer> {
    return queryAnswerJson(await this.queries.query(q));
  }

  @Post('query/multi')
  @Access('read')
  @HttpCode(200)
  @ApiOperation({ summary: 'Several queries over one range, run concurrently' })
  @JsonBody(MultiQueryBody, {
    example: {
      queries: [
        { metric: 'cpu_usage', source: 'fl_server', aggregation: 'avg' },
        { metric: 'active_clients', source: 'fl_server', aggregation: 'last' },
      ],
      from: 'now-1h',
      granularity: '5m',
    },
  })
  @Answer(200, MultiQueryResult)
  multi(@Body() body: unknown) {
    return this.queries.multi(body);
  }

  @Get('names')
  @Access('read')
  @ApiOperation({ summary: 'Metric names with their units and series counts' })
  @ApiQuery({ name: 'search', required: false })
  @Answer(200, MetricNames)
  names(@Query('search') search?: unknown) {
    return this.queries.names(search);
  }

  @Get('sources')
  @Access('read')
  @ApiOperation({ summary: 'Sources, optionally of one metric' })
  @ApiQuery({ name: 'metric', required: false })
  @Answer(200, SourceNames)
  sources(@Query('metric') metric?: unknown) {
    return this.queries.sources(metric);
  }

  @Get('tags')
  @Access('read')
  @ApiOperation({ summary: 'Tag keys of a metric and their values' })
  @ApiQuery({ name: 'metric', required: true })
  @ApiQuery({ name: 'source', required: false })
  @Answer(200, TagCatalogue)
  tags(@Query('metric') metric?: unknown, @Query('source') source?: unknown) {
    return this.queries.tags(metric, source);
  }
}
