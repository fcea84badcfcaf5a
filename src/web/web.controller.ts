import { Controller, Get, Headers, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Access } from '../auth/access.js';
import { StaticAnswer, WebService } from './web.service.js';

/**
 * The live page (`/`) and its files (`/ui/<name>`): public, so that a browser can load the page
 * before it has a key, and rate-limited as the API documents are (RATE_LIMIT_DOCS per address).
 */
@ApiExcludeController()
@Controller()
export class WebController {
  constructor(private readonly web: WebService) {}

  @Get()
  @Access('public', { rate: 'docs' })
  page(@Headers('if-none-match') etag: string | undefined, @Res() reply: FastifyReply) {
    return send(reply, this.web.page(etag));
  }

  @Get('ui/:file')
  @Access('public', { rate: 'docs' })
  file(@Param('file') file: string, @Headers('if-none-match') etag: string | undefined, @Res() reply: FastifyReply) {
    return send(reply, this.web.serve(file, etag));
  }
}

function send(reply: FastifyReply, a: StaticAnswer) {
  return reply.status(a.status).headers(a.headers).send(a.body);
}
