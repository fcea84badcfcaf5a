import { Body, Controller, Get, Put, Query, Req } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { SettingsService } from './settings.service.js';

@ApiTags('config')
@Controller('api/v1/config')
export class SettingsController {
  constructor(private readonly settings: SettingsService) {}

  @Get()
  @ApiOperation({ summary: 'The running configuration: storage, processing, alerting, collector, jobs; where each value comes from' })
  get() {
    return this.settings.document();
  }

  @Put()
  @ApiOperation({ summary: 'Changes settings from a partial document; all valid or nothing applied; stored, applied live and recorded' })
  @ApiBody({ schema: { type: 'object', example: { storage: { retention_days: 14 }, collector: { interval_live: '10s' } } } })
  put(@Body() body: unknown, @Req() req: FastifyRequest) {
    return this.settings.update(body, actorOf(req));
  }

  @Get('history')
  @ApiOperation({ summary: 'Every change: version, who, when, each field before and after (newest first)' })
  @ApiQuery({ name: 'limit', required: false, description: '1 to 1000 (default 50)' })
  @ApiQuery({ name: 'before', required: false, description: 'only versions below this one (paging)' })
  history(@Query('limit') limit?: string, @Query('before') before?: string) {
    return this.settings.history(limit, before);
  }
}

/** Who made a change: the authenticated principal when an auth layer sets one, else the X-Actor header, else the client address. */
function actorOf(req: FastifyRequest) {
  const principal = (req as unknown as { user?: { name?: unknown; id?: unknown } }).user;
  const header = req.headers['x-actor'];
  const named = typeof principal?.name === 'string' ? principal.name : typeof principal?.id === 'string' ? principal.id : undefined;
  const by = named ?? (typeof header === 'string' && header.trim() ? header.trim().slice(0, 200) : `anonymous@${req.ip}`);
  const ua = req.headers['user-agent'];
  return { by, client: { ip: req.ip, user_agent: typeof ua === 'string' ? ua.slice(0, 200) : null } };
}
