import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Access } from './access.js';
import { ApiKeysService } from './api-keys.service.js';
import { principalOf } from './front-door.js';
import { Answer, JsonBody, NoContent } from '../openapi/decorators.js';
import { ApiKey, ApiKeyCreated, ApiKeyInput, ApiKeyList, WhoAmI } from '../openapi/schemas/system.js';

@ApiTags('auth')
@Controller('api/v1/auth')
export class AuthController {
  constructor(private readonly keys: ApiKeysService) {}

  @Post('keys')
  @HttpCode(201)
  @Access('admin')
  @ApiOperation({
    summary: 'Creates an API key; the reply holds the key itself, shown this once (only its hash is stored)',
  })
  @JsonBody(ApiKeyInput, {
    example: { name: 'collector-eu1', scopes: ['ingest'], expires_at: null, rate_limits: { ingest: 60000 } },
  })
  @Answer(201, ApiKeyCreated, 'Created: the key is in `key`, shown this once')
  create(@Body() body: unknown, @Req() req: FastifyRequest) {
    return this.keys.create(body, principalOf(req).name);
  }

  @Get('keys')
  @Access('admin')
  @ApiOperation({ summary: 'API keys (never the keys themselves): name, prefix, scopes, created, last used' })
  @ApiQuery({ name: 'include_revoked', required: false, description: 'true: also revoked keys' })
  @Answer(200, ApiKeyList)
  list(@Query('include_revoked') includeRevoked?: string) {
    return this.keys.list(includeRevoked === 'true');
  }

  @Get('keys/:id')
  @Access('admin')
  @ApiOperation({ summary: 'One API key' })
  @Answer(200, ApiKey)
  get(@Param('id') id: string) {
    return this.keys.get(id);
  }

  @Delete('keys/:id')
  @HttpCode(204)
  @Access('admin')
  @ApiOperation({
    summary: 'Revokes an API key at once (kept, marked revoked); the last live admin key cannot be revoked',
  })
  @NoContent('Revoked')
  async revoke(@Param('id') id: string): Promise<void> {
    await this.keys.revoke(id);
  }

  @Get('whoami')
  @Access('any')
  @ApiOperation({ summary: 'The key this request was made with: name and scopes' })
  @Answer(200, WhoAmI)
  whoami(@Req() req: FastifyRequest) {
    const p = principalOf(req);
    return { name: p.name, key_id: p.keyId, scopes: p.scopes };
  }
}
