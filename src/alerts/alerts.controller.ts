import { applyDecorators, Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AlertRulesService } from './alert-rules.service.js';
import { AlertsService } from './alerts.service.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import {
  Acknowledge,
  Alert,
  AlertList,
  AlertNotifications,
  AlertRaise,
  AlertRaised,
  Resolve,
} from '../openapi/schemas/control.js';

/** The parameters and answer of the alert list, served at two paths. */
const AlertListQuery = () =>
  applyDecorators(
    ApiQuery({
      name: 'state',
      required: false,
      description: 'firing, acknowledged, resolved, active (default) or all; comma-separated',
    }),
    ApiQuery({ name: 'severity', required: false, description: 'info, warning, critical' }),
    ...['rule_id', 'source', 'limit', 'cursor'].map((name) => ApiQuery({ name, required: false })),
    Answer(200, AlertList),
  );

@ApiTags('alerts')
@Controller()
export class AlertsController {
  constructor(
    private readonly alerts: AlertsService,
    private readonly rules: AlertRulesService,
  ) {}

  @Get('api/v1/alerts')
  @Access('read')
  @ApiOperation({ summary: 'Alerts (active by default) with active_count, critical_count, warning_count' })
  @AlertListQuery()
  list(@Query() q: Record<string, unknown>) {
    return this.alerts.list(q);
  }

  @Get('api/v1/monitoring/alerts')
  @Access('read', { rate: 'monitoring_alerts' })
  @ApiOperation({ summary: 'Alerts, as GET /api/v1/alerts (monitoring reference path, with its rate limit)' })
  @AlertListQuery()
  monitoringList(@Query() q: Record<string, unknown>) {
    return this.alerts.list(q);
  }

  @Post('api/v1/alerts')
  @Access('ingest')
  @ApiOperation({
    summary:
      'Raise an alert {title, message, severity: 1|2|3, service} (system-monitor reference); an active one with the same title and service counts again (200)',
  })
  @JsonBody(AlertRaise, {
    example: { title: 'High CPU Usage', message: 'CPU usage above 90%', severity: 2, service: 'your-service-name' },
  })
  @Answer(201, AlertRaised, 'Raised')
  @Answer(200, AlertRaised, 'An active alert with the same title and service counted again')
  async raise(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const r = await this.alerts.raise(body);
    reply.status(r.created ? 201 : 200);
    return { status: 'success', ...r };
  }

  @Get('api/v1/alerts/:id')
  @Access('read')
  @ApiOperation({ summary: 'One alert (id 42 or alt_42)' })
  @Answer(200, Alert)
  get(@Param('id') id: string) {
    return this.alerts.get(id);
  }

  @Post('api/v1/alerts/:id/acknowledge')
  @HttpCode(200)
  @Access('admin')
  @ApiOperation({ summary: 'Acknowledge a firing alert {acknowledged_by, notes?}' })
  @JsonBody(Acknowledge, { example: { acknowledged_by: 'admin', notes: 'Investigating' } })
  @Answer(200, Alert)
  acknowledge(@Param('id') id: string, @Body() body: unknown) {
    return this.alerts.acknowledge(id, body);
  }

  @Post('api/v1/monitoring/alerts/:id/acknowledge')
  @HttpCode(200)
  @Access('admin', { rate: 'monitoring_alerts' })
  @ApiOperation({ summary: 'Acknowledge a firing alert (monitoring reference path, with its rate limit)' })
  @JsonBody(Acknowledge)
  @Answer(200, Alert)
  monitoringAcknowledge(@Param('id') id: string, @Body() body: unknown) {
    return this.alerts.acknowledge(id, body);
  }

  @Post('api/v1/alerts/:id/resolve')
  @Access('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resolve an alert by hand {resolved_by?, notes?}' })
  @JsonBody(Resolve, { required: false })
  @Answer(200, Alert)
  resolve(@Param('id') id: string, @Body() body: unknown) {
    return this.alerts.resolveByHand(id, body, (ruleId) => this.rules.rule(ruleId));
  }

  @Get('api/v1/alerts/:id/notifications')
  @Access('read', { webhookUrls: true })
  @ApiOperation({ summary: 'Webhook deliveries of an alert, with every attempt' })
  @Answer(200, AlertNotifications)
  notifications(@Param('id') id: string) {
    return this.alerts.notifications(id);
  }
}
