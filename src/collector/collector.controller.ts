import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { CollectorService } from './collector.service.js';

@ApiTags('collector')
@Controller('api/v1')
export class CollectorController {
  constructor(private readonly collector: CollectorService) {}

  @Get('collector/metrics')
  @ApiOperation({ summary: 'This host now, from the live cache: cpu, ram, gpu (%), temperature (°C), disk {used, free, total (bytes), percent}' })
  metrics() {
    return this.collector.metrics();
  }

  @Get('collector/gpu')
  @ApiOperation({ summary: "Every NVIDIA GPU's figures (utilization, memory, temperature, power, SM clock), or why none is available" })
  gpu() {
    return this.collector.gpus();
  }

  @Get('collector/status')
  @ApiOperation({ summary: 'The collector itself: samplers, timeouts, buffer, persists' })
  status() {
    return this.collector.status();
  }

  @Get('monitoring/metrics')
  @ApiOperation({ summary: 'System metrics (monitoring API shape): cpu, memory, disk in GiB, network totals' })
  monitoring() {
    return this.collector.monitoring();
  }
}
