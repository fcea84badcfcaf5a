import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ServiceRegistry } from './service-registry.service.js';
import { Access } from '../auth/access.js';
import { CollectorService } from '../collector/collector.service.js';
import { AnyObject } from '../openapi/schemas/common.js';
import { Answer, JsonBody, NoContent } from '../openapi/decorators.js';
import {
  MonitoringStatus,
  Service,
  ServiceList,
  ServiceReport,
  ServiceReportReply,
} from '../openapi/schemas/control.js';

@ApiTags('services')
@Controller()
export class ServiceStatusController {
  constructor(
    private readonly registry: ServiceRegistry,
    private readonly collector: CollectorService,
  ) {}

  @Post('api/v1/services')
  @Access('ingest')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Register or update a service {name, status: up|down|unknown, endpoint?, ttl_seconds?, metadata?}',
  })
  @JsonBody(ServiceReport, {
    example: { name: 'your-service-name', status: 'up', endpoint: 'http://your-service:8080', ttl_seconds: 120 },
  })
  @Answer(200, ServiceReportReply)
  report(@Body() body: unknown) {
    return this.registry.report(body);
  }

  @Get('api/v1/services')
  @Access('read')
  @ApiOperation({ summary: 'Services with status, uptime and 24-hour availability' })
  @Answer(200, ServiceList)
  list() {
    return this.registry.list();
  }

  @Get('api/v1/services/:name')
  @Access('read')
  @ApiOperation({ summary: 'One service' })
  @Answer(200, Service)
  get(@Param('name') name: string) {
    return this.registry.get(name);
  }

  @Delete('api/v1/services/:name')
  @Access('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Forget a service (recorded as an event)' })
  @NoContent('Forgotten')
  remove(@Param('name') name: string) {
    return this.registry.remove(name);
  }

  @Get('metrics')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'System metrics and services (collector-api.md, first half, base http://localhost:8000/): {timestamp, system: {cpu_usage (%), memory_usage (MiB), disk_usage (MiB), network_io}, services: {name: {status, response_time_ms, last_check}}}',
  })
  @Answer(200, AnyObject)
  async collectorApiMetrics() {
    return {
      timestamp: new Date().toISOString(),
      system: this.collector.collectorApiSystem(),
      services: await this.registry.collectorApiServices(),
    };
  }

  @Get('api/v1/monitoring/status')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'Service status in the monitoring reference shape: {services: [{name, status: running|stopped|unknown, uptime_seconds, port}]}',
  })
  @Answer(200, MonitoringStatus)
  monitoringStatus() {
    return this.registry.monitoringStatus();
  }
}
