import { Body, Controller, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Access } from '../auth/access.js';
import { invalidQuery, invalidRequest } from '../common/errors.js';
import { IngestionService, LineProtocolReply } from './ingestion.service.js';
import { LineProtocolPrecision, V1_PRECISIONS, V2_PRECISIONS } from './line-protocol.js';
import { LINE_PROTOCOL_CONTENT_TYPES } from './line-protocol.http.js';

type QueryParams = Record<string, unknown>;

/** A single query parameter's text; undefined when absent, 400 when given twice. */
function param(q: QueryParams, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidQuery(name, `${name} must be given once`);
  return v;
}

function required(q: QueryParams, name: string, what: string): string {
  const v = param(q, name);
  if (v === undefined || v === '')
    throw invalidQuery(name, `${name} is required: the ${what} to write to (it becomes the source of the points)`);
  return v;
}

function precision(q: QueryParams, accepted: Readonly<Record<string, LineProtocolPrecision>>): LineProtocolPrecision {
  const v = param(q, 'precision');
  if (v === undefined || v === '') return 'ns';
  const p = Object.hasOwn(accepted, v) ? accepted[v] : undefined;
  if (!p)
    throw invalidQuery(
      'precision',
      `precision must be one of ${Object.keys(accepted).join(', ')} (got ${JSON.stringify(v.slice(0, 16))})`,
    );
  return p;
}

function text(body: unknown): string | Buffer {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string' || Buffer.isBuffer(body)) return body;
  throw invalidRequest('The body must be line protocol text');
}

/** 204 as InfluxDB answers, with what was stored in headers. */
function done(reply: FastifyReply, r: LineProtocolReply): void {
  reply.header('X-Timescope-Points-Written', String(r.points));
  if (r.skippedStringFields > 0) reply.header('X-Timescope-String-Fields-Skipped', String(r.skippedStringFields));
}

const precisionDoc = (values: string[]) => ({
  name: 'precision',
  required: false,
  enum: values,
  description: 'Unit of the timestamps (default ns)',
});

/**
 * InfluxDB's write endpoints (v2 and 1.x), for Telegraf, the InfluxDB client libraries and
 * anything else that speaks line protocol. Every write goes through the same decoder rules and the
 * same writer as JSON ingest; 204 means committed.
 */
@ApiTags('ingest')
@Controller()
export class LineProtocolController {
  constructor(private readonly ingestion: IngestionService) {}

  @Post('api/v2/write')
  @Access('ingest', { contentTypes: LINE_PROTOCOL_CONTENT_TYPES })
  @HttpCode(204)
  @ApiOperation({
    summary:
      'InfluxDB v2 write: line protocol; the bucket is the source; metric = <measurement>_<field>. Authorization: Token <key>',
  })
  @ApiQuery({ name: 'bucket', required: true, description: 'Becomes the source of every point' })
  @ApiQuery({ name: 'org', required: false, description: 'Accepted and ignored' })
  @ApiQuery(precisionDoc(Object.keys(V2_PRECISIONS)))
  @ApiConsumes('text/plain')
  @ApiBody({ schema: { type: 'string', example: 'cpu,host=a usage_user=12.5,usage_system=3i 1705314600000000000' } })
  @ApiResponse({ status: 204, description: 'Committed' })
  @ApiQuery({ name: 'orgID', required: false, description: 'Accepted and ignored (InfluxDB 2 clients may send it)' })
  async writeV2(
    @Body() body: unknown,
    @Query() q: QueryParams,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    const bucket = required(q, 'bucket', 'bucket');
    done(
      reply,
      await this.ingestion.writeLineProtocol(text(body), bucket, 'bucket', precision(q, V2_PRECISIONS), 'influx_v2'),
    );
  }

  @Post('write')
  @Access('ingest', { contentTypes: LINE_PROTOCOL_CONTENT_TYPES })
  @HttpCode(204)
  @ApiOperation({
    summary:
      'InfluxDB 1.x write: line protocol; the database is the source. Key as Basic password or Token; ?u=&p= are not read',
  })
  @ApiQuery({ name: 'db', required: true, description: 'Becomes the source of every point' })
  @ApiQuery({ name: 'rp', required: false, description: 'Accepted and ignored (retention is METRICS_RETENTION_DAYS)' })
  @ApiQuery(precisionDoc(Object.keys(V1_PRECISIONS)))
  @ApiConsumes('text/plain')
  @ApiBody({ schema: { type: 'string', example: 'cpu,host=a value=12.5 1705314600' } })
  @ApiResponse({ status: 204, description: 'Committed' })
  @ApiQuery({ name: 'u', required: false, description: 'Accepted and not read (the key is the Basic auth password)' })
  @ApiQuery({ name: 'p', required: false, description: 'Accepted and not read: use Basic auth or Token' })
  @ApiQuery({ name: 'consistency', required: false, description: 'Accepted and ignored' })
  async writeV1(
    @Body() body: unknown,
    @Query() q: QueryParams,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<void> {
    const db = required(q, 'db', 'database');
    done(reply, await this.ingestion.writeLineProtocol(text(body), db, 'db', precision(q, V1_PRECISIONS), 'influx_v1'));
  }
}
