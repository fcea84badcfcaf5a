import { Body, Controller, Headers, HttpCode, Post, Res } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Access } from '../auth/access.js';
import { PROTOBUF_CONTENT_TYPE } from './binary-body.js';
import { IngestionService } from './ingestion.service.js';
import { JsonBody, MediaAnswer } from '../openapi/decorators.js';
import { OtlpRequest } from '../openapi/schemas/ingest.js';

/** The ingest protocols of other systems' agents: Prometheus remote write and OTLP/HTTP metrics. */
@ApiTags('ingest')
@Controller()
export class ProtocolsController {
  constructor(private readonly ingestion: IngestionService) {}

  @Post('api/v1/write')
  @Access('ingest', { contentTypes: [PROTOBUF_CONTENT_TYPE] })
  @HttpCode(204)
  @ApiOperation({
    summary:
      'Prometheus remote write 1.0: a snappy-compressed prometheus.WriteRequest (Content-Encoding: snappy); 204 after commit',
  })
  @ApiConsumes(PROTOBUF_CONTENT_TYPE)
  @ApiBody({ schema: { type: 'string', format: 'binary' } })
  @ApiResponse({
    status: 204,
    description: 'Stored (stale markers, NaN/Inf samples and native histograms are skipped and counted)',
  })
  async remoteWrite(
    @Body() body: unknown,
    @Headers() headers: Record<string, string | string[] | undefined>,
  ): Promise<void> {
    await this.ingestion.remoteWrite(body, headers);
  }

  @Post('v1/metrics')
  @Access('ingest', { contentTypes: [PROTOBUF_CONTENT_TYPE, 'application/json'] })
  @HttpCode(200)
  @ApiOperation({
    summary:
      'OTLP/HTTP metrics: ExportMetricsServiceRequest as protobuf or OTLP JSON; the response in the same encoding, partial_success for points not stored',
  })
  @ApiConsumes(PROTOBUF_CONTENT_TYPE, 'application/json')
  @ApiProduces(PROTOBUF_CONTENT_TYPE, 'application/json')
  @JsonBody(OtlpRequest, { description: 'OTLP protobuf, or its JSON mapping' })
  @MediaAnswer(
    200,
    [PROTOBUF_CONTENT_TYPE, 'application/json'],
    'ExportMetricsServiceResponse in the encoding of the request: empty, or partial_success',
  )
  async otlp(
    @Body() body: unknown,
    @Headers('content-type') contentType: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const protobuf = (contentType ?? '').split(';', 1)[0].trim().toLowerCase() === PROTOBUF_CONTENT_TYPE;
    const response = await this.ingestion.otlp(body, protobuf);
    reply.header('content-type', protobuf ? PROTOBUF_CONTENT_TYPE : 'application/json; charset=utf-8');
    return response;
  }
}
