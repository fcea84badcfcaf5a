import { Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { EventsService } from './events.service.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import {
  EventList,
  EventsAccepted,
  EventsBody,
  LogList,
  LogsBody,
  PolicyEventList,
  PolicyEventsBody,
} from '../openapi/schemas/control.js';

const listDocs = [
  { name: 'limit', required: false, description: '1 to 1000' },
  { name: 'cursor', required: false, description: 'next_cursor of the previous page' },
];

@ApiTags('events')
@Controller()
export class EventsController {
  constructor(private readonly events: EventsService) {}

  @Post('api/v1/events')
  @Access('ingest')
  @HttpCode(201)
  @ApiOperation({
    summary:
      'Record an event {kind, source?, level?, message?, attributes?, timestamp?} or {events: [...]} (up to 1000)',
  })
  @JsonBody(EventsBody, {
    example: {
      kind: 'deploy',
      source: 'api',
      level: 'info',
      message: 'v1.2 rolled out',
      attributes: { version: '1.2' },
    },
  })
  @Answer(201, EventsAccepted, 'Stored')
  submit(@Body() body: unknown) {
    return this.events.submit(body);
  }

  @Get('api/v1/events')
  @Access('read')
  @ApiOperation({ summary: 'Events, newest first; kind, source and level take comma-separated lists; [since, until)' })
  @ApiQuery({ name: 'kind', required: false, description: 'log, policy, pipeline_status, service_status, alert, …' })
  @ApiQuery({ name: 'source', required: false })
  @ApiQuery({ name: 'level', required: false, description: 'debug, info, warn, error, critical' })
  @ApiQuery({ name: 'since', required: false, description: 'ISO 8601, epoch ms or now-1h (inclusive)' })
  @ApiQuery({ name: 'until', required: false, description: 'exclusive' })
  @ApiQuery(listDocs[0])
  @ApiQuery(listDocs[1])
  @Answer(200, EventList)
  list(@Query() q: Record<string, unknown>) {
    return this.events.list(q);
  }

  @Get(['policy/events', 'api/v1/policy/events'])
  @Access('read')
  @ApiOperation({
    summary:
      'Policy events (collector reference): {events: [{timestamp, policy_id, event_type, target, result, details}], total, since}',
  })
  @ApiQuery({ name: 'limit', required: false, description: 'default 50' })
  @ApiQuery({ name: 'since', required: false })
  @ApiQuery({ name: 'until', required: false, description: 'exclusive' })
  @ApiQuery({ name: 'source', required: false })
  @ApiQuery({ name: 'level', required: false })
  @ApiQuery(listDocs[1])
  @Answer(200, PolicyEventList)
  policyEvents(@Query() q: Record<string, unknown>) {
    return this.events.policyEvents(q);
  }

  @Post('api/v1/policy/events')
  @Access('ingest')
  @HttpCode(201)
  @ApiOperation({
    summary: 'Record policy events {policy_id, event_type, target?, result?, details?, timestamp?} or {events: [...]}',
  })
  @JsonBody(PolicyEventsBody)
  @Answer(201, EventsAccepted, 'Stored')
  submitPolicyEvents(@Body() body: unknown) {
    return this.events.submitPolicyEvents(body);
  }

  @Get('api/v1/monitoring/logs')
  @Access('read', { rate: 'monitoring_logs' })
  @ApiOperation({
    summary: 'Logs (monitoring reference): {logs: [{timestamp, level, service, message, metadata}], total, query}',
  })
  @ApiQuery({ name: 'level', required: false, description: 'error, warn, info, debug (comma-separated for several)' })
  @ApiQuery({ name: 'start_time', required: false })
  @ApiQuery({ name: 'end_time', required: false })
  @ApiQuery({ name: 'service', required: false })
  @ApiQuery({ name: 'limit', required: false, description: 'default 100' })
  @ApiQuery(listDocs[1])
  @Answer(200, LogList)
  logs(@Query() q: Record<string, unknown>) {
    return this.events.logs(q);
  }

  @Post('api/v1/monitoring/logs')
  @Access('ingest')
  @HttpCode(201)
  @ApiOperation({ summary: 'Record log entries {level, service, message, metadata?, timestamp?} or {logs: [...]}' })
  @JsonBody(LogsBody)
  @Answer(201, EventsAccepted, 'Stored')
  submitLogs(@Body() body: unknown) {
    return this.events.submitLogs(body);
  }
}
