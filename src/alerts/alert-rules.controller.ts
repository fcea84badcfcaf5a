import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Res } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AlertRulesService } from './alert-rules.service.js';
import { Access } from '../auth/access.js';

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
  @ApiBody({ schema: { type: 'object' } })
  async configure(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const { created, reply: rule } = await this.rules.configure(body);
    reply.status(created ? 201 : 200);
    return rule;
  }

  @Get('api/v1/alert-rules')
  @Access('read')
  @ApiOperation({ summary: 'Alert rules with their last evaluation and active alerts' })
  list() {
    return this.rules.list();
  }

  @Post('api/v1/alert-rules')
  @Access('admin')
  @HttpCode(201)
  @ApiOperation({ summary: 'Create a threshold or anomaly rule; a generated webhook secret is shown once' })
  @ApiBody({ schema: { type: 'object' } })
  create(@Body() body: unknown) {
    return this.rules.create(body);
  }

  @Get('api/v1/alert-rules/:id')
  @Access('read')
  @ApiOperation({ summary: 'One alert rule' })
  get(@Param('id') id: string) {
    return this.rules.get(id);
  }

  @Put('api/v1/alert-rules/:id')
  @Access('admin')
  @ApiOperation({ summary: 'Replace an alert rule (rotate_webhook_secret: true makes a new secret, shown once)' })
  @ApiBody({ schema: { type: 'object' } })
  update(@Param('id') id: string, @Body() body: unknown) {
    return this.rules.update(id, body);
  }

  @Delete('api/v1/alert-rules/:id')
  @Access('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete an alert rule; its active alerts resolve' })
  remove(@Param('id') id: string) {
    return this.rules.remove(id);
  }
}
