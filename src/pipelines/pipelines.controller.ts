import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { PipelineStatusService } from '../events/pipeline-status.service.js';
import { isStatusReport } from './parse-pipeline.js';
import { PipelineRunner } from './pipeline-runner.service.js';
import { PipelinesService } from './pipelines.service.js';
import { rangeInput } from './run-range.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody, NoContent } from '../openapi/decorators.js';
import { AnyObject } from '../openapi/schemas/common.js';
import {
  Pipeline,
  PipelineDefinition,
  PipelineList,
  PipelineRun,
  PipelineRuns,
  RunRange,
} from '../openapi/schemas/control.js';

/** Only digits: `/api/v1/pipelines/status` (pipeline status reports) and other words never reach these routes. */
const ID = ':id(^\\d+$)';
const rangeDoc = {
  required: false,
  description:
    'ISO 8601 with zone, epoch ms, now, now-<duration> or now+<duration>; a window belongs to the range holding its end',
};
const pipelineExample = {
  name: 'experiment_summary',
  pipeline: [
    { operation: 'filter', params: { tags: { experiment_id: 'exp_001' } } },
    { operation: 'aggregate', params: { window: '5m', functions: ['avg', 'max'] } },
  ],
  output: { destination: 'webhook', url: 'https://your-system.com/webhook' },
  schedule: { every: '5m' },
};

@ApiTags('pipelines')
@Controller()
export class PipelinesController {
  constructor(
    private readonly pipelines: PipelinesService,
    private readonly runner: PipelineRunner,
    private readonly status: PipelineStatusService,
  ) {}

  @Post('api/v1/metrics/pipeline')
  @Access('admin')
  @ApiOperation({
    summary:
      'Saves a pipeline (the reference route, collector-api.md "Custom Data Pipeline"); same as POST /api/v1/pipelines',
  })
  @JsonBody(PipelineDefinition, { example: pipelineExample })
  @Answer(201, Pipeline, 'Saved (the webhook secret is shown this once)')
  createReference(@Body() body: unknown) {
    return this.pipelines.create(body);
  }

  @Post('api/v1/pipelines')
  @Access('admin')
  @ApiOperation({ summary: 'Saves a pipeline: validated stages, output (none, metric, webhook) and schedule' })
  @JsonBody(PipelineDefinition, { example: pipelineExample })
  @Answer(201, Pipeline, 'Saved (the webhook secret is shown this once)')
  create(@Body() body: unknown) {
    // The system-monitor client POSTs pipeline status reports to /pipelines/ (trailing slash).
    if (isStatusReport(body)) return this.status.report(body);
    return this.pipelines.create(body);
  }

  @Get('api/v1/pipelines')
  @Access('read', { webhookUrls: true })
  @ApiOperation({ summary: 'Saved pipelines with their schedule state and last run' })
  @Answer(200, PipelineList)
  list() {
    return this.pipelines.list();
  }

  @Post('api/v1/pipelines/dry-run')
  @Access('read')
  @HttpCode(200)
  @ApiOperation({ summary: 'Dry-run of an unsaved definition over history: what it would emit, window by window' })
  @ApiQuery({ name: 'from', ...rangeDoc })
  @ApiQuery({ name: 'to', ...rangeDoc })
  @JsonBody(PipelineDefinition)
  @Answer(200, AnyObject, 'What it would have emitted, window by window')
  dryRunDefinition(@Body() body: unknown, @Query() q: Record<string, unknown>) {
    return this.runner.dryRunDefinition(body, q);
  }

  @Get(`api/v1/pipelines/${ID}`)
  @Access('read', { webhookUrls: true })
  @ApiOperation({ summary: 'One pipeline' })
  @Answer(200, Pipeline)
  get(@Param('id') id: string) {
    return this.pipelines.get(id);
  }

  @Put(`api/v1/pipelines/${ID}`)
  @Access('admin')
  @ApiOperation({ summary: 'Replaces a pipeline definition (validated as on creation)' })
  @JsonBody(PipelineDefinition)
  @Answer(200, Pipeline)
  update(@Param('id') id: string, @Body() body: unknown) {
    return this.pipelines.update(id, body);
  }

  @Delete(`api/v1/pipelines/${ID}`)
  @Access('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Deletes a pipeline and its run history (derived series and webhook logs stay)' })
  @NoContent('Deleted')
  async remove(@Param('id') id: string): Promise<void> {
    await this.pipelines.remove(id);
  }

  @Post(`api/v1/pipelines/${ID}/run`)
  @Access('admin')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Runs now over from/to (default: the last window), delivers, records the run, returns the rows',
  })
  @ApiQuery({ name: 'from', ...rangeDoc })
  @ApiQuery({ name: 'to', ...rangeDoc })
  @JsonBody(RunRange, { required: false, description: 'or the range as query parameters' })
  @Answer(200, PipelineRun)
  run(@Param('id') id: string, @Query() q: Record<string, unknown>, @Body() body: unknown) {
    return this.runner.run(id, rangeInput(q, body));
  }

  @Post(`api/v1/pipelines/${ID}/dry-run`)
  @Access('read', { webhookUrls: true })
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Replays the pipeline over history and returns what it would have emitted, window by window; delivers nothing',
  })
  @ApiQuery({ name: 'from', ...rangeDoc })
  @ApiQuery({ name: 'to', ...rangeDoc })
  @JsonBody(RunRange, { required: false, description: 'or the range as query parameters' })
  @Answer(200, AnyObject, 'What it would have emitted, window by window')
  dryRun(@Param('id') id: string, @Query() q: Record<string, unknown>, @Body() body: unknown) {
    return this.runner.dryRun(id, rangeInput(q, body));
  }

  @Get(`api/v1/pipelines/${ID}/runs`)
  @Access('read', { webhookUrls: true })
  @ApiOperation({ summary: 'Runs of a pipeline, newest first: range, windows, rows, delivery outcome, error' })
  @ApiQuery({ name: 'limit', required: false, description: '1-1000, default 100' })
  @Answer(200, PipelineRuns)
  runs(@Param('id') id: string, @Query('limit') limit?: string) {
    return this.runner.runs(id, limit);
  }
}
