import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { JobsService } from './jobs.service.js';
import { Access } from '../auth/access.js';
import { Answer } from '../openapi/decorators.js';
import { JobList, JobRun } from '../openapi/schemas/system.js';

@ApiTags('system')
@Controller('api/v1/system/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Get()
  @Access('read')
  @ApiOperation({ summary: 'Scheduled jobs with their schedule, last run, duration, outcome and what they did' })
  @Answer(200, JobList)
  async list() {
    return { jobs: await this.jobs.list() };
  }

  @Post(':name/run')
  @Access('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Runs a job now (or waits for the run in progress) and returns the run' })
  @Answer(200, JobRun)
  run(@Param('name') name: string) {
    return this.jobs.runNow(name);
  }
}
