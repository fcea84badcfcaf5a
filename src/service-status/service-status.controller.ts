import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ServiceRegistry } from './service-registry.service.js';
import { Access } from '../auth/access.js';

@ApiTags('services')
@Controller()
export class ServiceStatusController {
  constructor(private readonly registry: ServiceRegistry) {}

  @Post('api/v1/services')
  @Access('ingest')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Register or update a service {name, status: up|down|unknown, endpoint?, ttl_seconds?, metadata?}',
  })
  @ApiBody({ schema: { type: 'object' } })
  report(@Body() body: unknown) {
    return this.registry.report(body);
  }

  @Get('api/v1/services')
  @Access('read')
  @ApiOperation({ summary: 'Services with status, uptime and 24-hour availability' })
  list() {
    return this.registry.list();
  }

  @Get('api/v1/services/:name')
  @Access('read')
  @ApiOperation({ summary: 'One service' })
  get(@Param('name') name: string) {
    return this.registry.get(name);
  }

  @Delete('api/v1/services/:name')
  @Access('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Forget a service (recorded as an event)' })
  remove(@Param('name') name: string) {
    return this.registry.remove(name);
  }

  @Get('api/v1/monitoring/status')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'Service status in the monitoring reference shape: {services: [{name, status: running|stopped|unknown, uptime_seconds, port}]}',
  })
  monitoringStatus() {
    return this.registry.monitoringStatus();
  }
}
