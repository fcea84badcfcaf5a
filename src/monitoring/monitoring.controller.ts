import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Access } from '../auth/access.js';
import { MonitoringService } from './monitoring.service.js';
import { SelfMetrics } from './self-metrics.service.js';
import { Answer, MediaAnswer, OpenQuery } from '../openapi/decorators.js';
import { DetailedHealth, GrafanaDashboard, MonitoringDocument } from '../openapi/schemas/system.js';

/** monitoring-api.md under /api/v1/monitoring (the rest of it: status, logs, alerts and /metrics live with their modules). */
@ApiTags('monitoring')
@Controller('api/v1/monitoring')
export class MonitoringController {
  constructor(
    private readonly monitoring: MonitoringService,
    private readonly self: SelfMetrics,
  ) {}

  @Get('health/detailed')
  @Access('read')
  @ApiOperation({
    summary:
      "Health of every component in the reference shape (database, cache, storage, llm: null) and Timescope's own; 503 when the database is unreachable",
  })
  @Answer(200, DetailedHealth)
  @Answer(503, DetailedHealth, 'The database is unreachable')
  async healthDetailed(@Res({ passthrough: true }) reply: FastifyReply) {
    const h = await this.monitoring.healthDetailed();
    if (h.status === 'unhealthy') reply.status(503);
    return h;
  }

  @Get('metrics/application')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'This instance since it started: uptime, requests (total, rate, latency), sessions (live streams), errors, ingestion, jobs',
  })
  @Answer(200, MonitoringDocument)
  application() {
    return this.monitoring.application();
  }

  @Get('metrics/performance')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'Response times (p50/p95/p99/mean/min/max), throughput and error rates over a period, per bucket, from the stored self-metrics',
  })
  @ApiQuery({
    name: 'period',
    required: false,
    description: '1h, 24h (default), 7d, 30d, or any N(m|h|d|w) up to 400d',
  })
  @ApiQuery({
    name: 'resolution',
    required: false,
    enum: ['minute', 'hour', 'day'],
    description: 'default: minute up to 6h, hour up to 7d, day beyond',
  })
  @Answer(200, MonitoringDocument)
  performance(@Query() q: Record<string, unknown>) {
    return this.monitoring.performance(q);
  }

  @Get('metrics/prometheus')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({ summary: "Timescope's own metrics in the Prometheus text format (the same as /prometheus-metrics)" })
  @MediaAnswer(200, ['text/plain'], 'Prometheus text format 0.0.4', 'timescope_ingest_queue_points 45\n')
  @OpenQuery('a scrape config may add params of its own')
  async prometheus(@Res({ passthrough: true }) reply: FastifyReply) {
    reply.header('content-type', this.self.contentType);
    return this.self.exposition();
  }

  @Get('metrics/grafana')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      "A Grafana dashboard of the self-metrics over a Prometheus datasource: {dashboard} (the body of Grafana's POST /api/dashboards/db, with overwrite)",
  })
  @ApiQuery({
    name: 'datasource_uid',
    required: false,
    description: "uid of the Prometheus datasource; default ${DS_PROMETHEUS}, asked for by Grafana's import",
  })
  @Answer(200, GrafanaDashboard)
  grafana(@Query() q: Record<string, unknown>) {
    return this.monitoring.grafana(q);
  }

  @Get('resources/database')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'Connection pools (max, active, idle, waiting, created, closed) and statements: running now, slow, average duration',
  })
  @Answer(200, MonitoringDocument)
  database() {
    return this.monitoring.databaseResources();
  }

  @Get('resources/cache')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({ summary: 'The series id cache: hits, misses, hit rate, evictions, keys' })
  @Answer(200, MonitoringDocument)
  cache() {
    return this.monitoring.cacheResources();
  }

  @Get('errors/summary')
  @Access('read', { rate: 'monitoring_metrics' })
  @ApiOperation({
    summary:
      'Errors over a period: HTTP 4xx/5xx by code, status and route, failed job runs and webhook deliveries, error rate',
  })
  @ApiQuery({
    name: 'period',
    required: false,
    description: '1h, 24h (default), 7d, 30d, or any N(m|h|d|w) up to 400d',
  })
  @Answer(200, MonitoringDocument)
  errors(@Query() q: Record<string, unknown>) {
    return this.monitoring.errorsSummary(q);
  }

  @Get('debug/info')
  @Access('admin')
  @ApiOperation({
    summary:
      'Versions, process figures (GC runs, open files, memory, active resources) and a configuration summary without secrets',
  })
  @Answer(200, MonitoringDocument)
  debug() {
    return this.monitoring.debugInfo();
  }
}
