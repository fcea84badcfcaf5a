import { Controller, Get, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { HealthService } from './health.service.js';
import { Access } from '../auth/access.js';
import { Answer } from '../openapi/decorators.js';
import { Health, Liveness } from '../openapi/schemas/system.js';

@ApiTags('system')
@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get('health')
  @Access('public')
  @ApiOperation({ summary: 'Health of every component; 503 when the database is unreachable' })
  @Answer(200, Health)
  @Answer(503, Health, 'The database is unreachable')
  async get(@Res({ passthrough: true }) reply: FastifyReply) {
    const h = await this.health.health();
    if (h.status === 'unhealthy') reply.status(503);
    return h;
  }

  /**
   * `/health` where the reference documents put it, relative to their base URLs: collector-api.md's
   * `/api/v1`, monitoring-api.md's `/api/v1/monitoring` and metrics-collection-api-v2's
   * `/api/v2/app/{app_id}/health` (any app id: Timescope's health is not per app). A method of its
   * own, so that `/health` keeps its operation id in the OpenAPI document.
   */
  @Get(['api/v1/health', 'api/v1/monitoring/health', 'api/v2/app/:appId/health'])
  @Access('public')
  @ApiOperation({ summary: 'As GET /health, at the paths the reference documents give it' })
  @Answer(200, Health)
  @Answer(503, Health, 'The database is unreachable')
  alias(@Res({ passthrough: true }) reply: FastifyReply) {
    return this.get(reply);
  }

  @Get('health/live')
  @Access('public')
  @ApiOperation({ summary: 'Liveness: the process answers' })
  @Answer(200, Liveness)
  live() {
    return { status: 'ok' };
  }

  @Get('health/ready')
  @Access('public')
  @ApiOperation({ summary: 'Readiness: the database answers (503 otherwise)' })
  @Answer(200, Liveness)
  @Answer(503, Liveness, 'The database does not answer')
  async ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const ok = await this.health.ready();
    if (!ok) reply.status(503);
    return { status: ok ? 'ok' : 'unavailable' };
  }
}
