import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AlertRulesService } from './alert-rules.service.js';
import { Access } from '../auth/access.js';
import { Answer, JsonBody, NoContent } from '../openapi/decorators.js';
import { AlertRule, AlertRuleInput, AlertRuleList } from '../openapi/schemas/control.js';

@ApiTags('alerts')
@Controller()
export class AlertRulesController {
  constructor(private readonly rules: AlertRulesService) {}

  @Post('api/v1/monitoring/alerts/configure')
  @Access('admin', { rate: 'monitoring_alerts' })
  @ApiOperation({
    summary:
      'Configure an alert rule (monitoring reference): creates it (201), or replaces the rule of the same name (200)',
  })
  @JsonBody(AlertRuleInput, {
    example: {
      name: 'high_memory_usage',
      type: 'threshold',
      metric: 'memory.usage_percent',
      condition: 'greater_than',
      threshold: 90,
      duration_seconds: 300,
      severity: 'warning',
    },
  })
  @Answer(201, AlertRule, 'Created')
  @Answer(200, AlertRule, 'Replaced the rule of the same name')
  async configure(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const { created, reply: rule } = await this.rules.configure(body);
    reply.status(created ? 201 : 200);
    return rule;
  }

  @Get('api/v1/alert-rules')
  @Access('read', { webhookUrls: true })
  @ApiOperation({ summary: 'Alert rules with their last evaluation and active alerts' })
  @Answer(200, AlertRuleList)
  list() {
    return this.rules.list();
  }

  @Post('api/v1/alert-rules')
  @Access('admin')
  @HttpCode(201)
  @ApiOperation({ summary: 'Create a threshold or anomaly rule; a generated webhook secret is shown once' })
  @JsonBody(AlertRuleInput)
  @Answer(201, AlertRule, 'Created')
  create(@Body() body: unknown) {
    return this.rules.create(body);
  }

  @Get('api/v1/alert-rules/:id')
  @Access('read', { webhookUrls: true })
  @ApiOperation({ summary: 'One alert rule' })
  @Answer(200, AlertRule)
  get(@Param('id') id: string) {
    return this.rules.get(id);
  }

  @Put('api/v1/alert-rules/:id')
  @Access('admin')
  @ApiOperation({ summary: 'Replace an alert rule (rotate_webhook_secret: true makes a new secret, shown once)' })
  @JsonBody(AlertRuleInput)
  @Answer(200, AlertRule)
  update(@Param('id') id: string, @Body() body: unknown) {
    return this.rules.update(id, body);
  }

  @Delete('api/v1/alert-rules/:id')
  @Access('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete an alert rule; its active alerts resolve' })
  @NoContent('Deleted')
  remove(@Param('id') id: string) {
    return this.rules.remove(id);
  }
}
