import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { CollectorService } from './collector.service.js';
import { Access } from '../auth/access.js';

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
  metrics() {
    return this.collector.metrics();
  }

  @Get('collector/gpu')
  @Access('read')
  @ApiOperation({
    summary: "Every NVIDIA GPU's figures (utilization, memory, temperature, power, SM clock), or why none is available",
  })
  gpu() {
    return this.collector.gpus();
  }

  @Get('collector/status')
  @Access('read')
  @ApiOperation({ summary: 'The collector itself: samplers, timeouts, buffer, persists' })
  status() {
    return this.collector.status();
  }

  @Get('monitoring/metrics')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({ summary: 'System metrics (monitoring API shape): cpu, memory, disk in GiB, network totals' })
  monitoring() {
    return this.collector.monitoring();
  }
}
