import { Body, Controller, Get, Put, Query, Req } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { SettingsService } from './settings.service.js';
import { Access } from '../auth/access.js';
import { principalOf } from '../auth/front-door.js';
import { Answer, JsonBody } from '../openapi/decorators.js';
import { ConfigDocument, ConfigHistory, ConfigPatch } from '../openapi/schemas/system.js';

@ApiTags('config')
@Controller('api/v1/config')
export class SettingsController {
  constructor(private readonly settings: SettingsService) {}

  @Get()
  @Access('read')
  @ApiOperation({
    summary: 'The running configuration: storage, processing, alerting, collector, jobs; where each value comes from',
  })
  @Answer(200, ConfigDocument)
  get() {
    return this.settings.document();
  }

  @Put()
  @Access('admin')
  @ApiOperation({
    summary:
      'Changes settings from a partial document; all valid or nothing applied; stored, applied live and recorded',
  })
  @JsonBody(ConfigPatch, { example: { storage: { retention_days: 14 }, collector: { interval_live: '10s' } } })
  @Answer(200, ConfigDocument, 'The new document, with changes and restart_required')
  put(@Body() body: unknown, @Req() req: FastifyRequest) {
    return this.settings.update(body, actorOf(req));
  }

  @Get('history')
  @Access('admin')
  @ApiOperation({ summary: 'Every change: version, who, when, each field before and after (newest first)' })
  @ApiQuery({ name: 'limit', required: false, description: '1 to 1000 (default 50)' })
  @ApiQuery({ name: 'before', required: false, description: 'only versions below this one (paging)' })
  @Answer(200, ConfigHistory)
  history(@Query('limit') limit?: string, @Query('before') before?: string) {
    return this.settings.history(limit, before);
  }
}

/** Who made a change: the name of the API key it was made with (`anonymous` when AUTH is off), never a header the client chose. */
function actorOf(req: FastifyRequest) {
  const principal = principalOf(req);
  const ua = req.headers['user-agent'];
  return {
    by: principal.keyId === null ? `anonymous@${req.ip}` : principal.name,
    client: { ip: req.ip, key_id: principal.keyId, user_agent: typeof ua === 'string' ? ua.slice(0, 200) : null },
  };
}
