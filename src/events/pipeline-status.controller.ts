import { Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { PipelineStatusService } from './pipeline-status.service.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import { AnyObject } from '../openapi/schemas/common.js';
import { PipelineStatusList, PipelineStatusReport } from '../openapi/schemas/control.js';

@ApiTags('pipelines')
@Controller('api/v1/pipelines/status')
export class PipelineStatusController {
  constructor(private readonly status: PipelineStatusService) {}

  @Post()
  @Access('ingest')
  @HttpCode(201)
  @ApiOperation({
    summary:
      'Report a pipeline status {pipeline_type, status, metadata?, pipeline_id?, service?} (system-monitor reference)',
  })
  @JsonBody(PipelineStatusReport, {
    example: { pipeline_type: 'training', pipeline_id: 'resnet-7', status: 'running', metadata: { epoch: 5 } },
  })
  @Answer(201, AnyObject, 'Recorded')
  report(@Body() body: unknown) {
    return this.status.report(body);
  }

  @Get()
  @Access('read')
  @ApiOperation({ summary: 'Latest status per pipeline' })
  @ApiQuery({ name: 'status', required: false, description: 'pending, running, completed, failed, cancelled' })
  @ApiQuery({ name: 'pipeline_type', required: false })
  @Answer(200, PipelineStatusList)
  list(@Query() q: Record<string, unknown>) {
    return this.status.list(q);
  }
}
