import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { CollectorService } from './collector.service.js';
import { Access } from '../auth/access.js';
import { Answer } from '../openapi/decorators.js';
import { AnyObject } from '../openapi/schemas/common.js';
import { GpuReport, HostMetrics, MonitoringDocument } from '../openapi/schemas/system.js';

@ApiTags('collector')
@Controller('api/v1')
export class CollectorController {
  constructor(private readonly collector: CollectorService) {}

  @Get('collector/metrics')
  @Access('read')
  @ApiOperation({
    summary:
      'This host now, from the live cache: cpu, ram, gpu (%), temperature (°C), disk {used, free, total (bytes), percent}',
  })
  @Answer(200, HostMetrics)
  metrics() {
    return this.collector.metrics();
  }

  @Get('collector/gpu')
  @Access('read')
  @ApiOperation({
    summary: "Every NVIDIA GPU's figures (utilization, memory, temperature, power, SM clock), or why none is available",
  })
  @Answer(200, GpuReport)
  gpu() {
    return this.collector.gpus();
  }

  @Get('collector/health')
  @Access('read')
  @ApiOperation({
    summary:
      "The collector's health (host-metrics-collector.md /health): 200 while it samples and persists, else 503; with the current metrics summary",
  })
  @Answer(200, AnyObject, 'Sampling and persisting: {status: healthy, collector, metrics}')
  @Answer(
    503,
    AnyObject,
    'Off, starting, stalled or failing to persist: {status: unhealthy, collector, metrics (null before a sample)}',
  )
  health(@Res({ passthrough: true }) reply: FastifyReply) {
    const { ok, body } = this.collector.healthCheck();
    reply.status(ok ? 200 : 503);
    return body;
  }

  @Get('collector/status')
  @Access('read')
  @ApiOperation({ summary: 'The collector itself: samplers, timeouts, buffer, persists' })
  @Answer(200, MonitoringDocument)
  status() {
    return this.collector.status();
  }

  @Get('monitoring/metrics')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({ summary: 'System metrics (monitoring API shape): cpu, memory, disk in GiB, network totals' })
  @Answer(200, MonitoringDocument)
  monitoring() {
    return this.collector.monitoring();
  }
}
