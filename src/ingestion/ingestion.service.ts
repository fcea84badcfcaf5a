import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { ApiError, fieldErrors, invalidQuery, invalidRequest } from '../common/errors.js';
import { BoundedCache } from '../common/bounded-cache.js';
import type { Json } from '../common/input.js';
import { Precision, PRECISIONS } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { PointWriter } from '../storage/point-writer.js';
import type { PointBatch } from '../storage/point-batch.js';
import { decodeAvroMetrics } from './avro.js';
import type { ValidatedSeries } from './collect.js';
import { decodeOtlp, otlpProtobufToJson, otlpResponse } from './otlp.js';
import { decodeRemoteWrite, remoteWriteEncodingProblem, remoteWriteVersionProblem, unsnappy } from './remote-write.js';
import {
  decodeAppMetrics,
  decodeBatches,
  decodeSubmission,
  DecodeContext,
  IngestLimits,
  KnownSeriesIndex,
  sourceProblem,
  tooManyTagsMessage,
} from './decode.js';
import { LineProtocolPrecision, LineSeriesIndex, parseLineProtocol } from './line-protocol.js';
import { scanBatches, scanSubmission, ScanSeriesCache } from './json-scan.js';
import type { JsonFastPath, JsonGuard } from '../common/json-body.js';
import { IngestShape, oversizedTags } from '../common/tag-guard.js';

/** A JSON ingest body the scanner (json-scan.ts) read straight from its bytes, as the handler receives it. */
export class ScannedBody {
  constructor(
    readonly batch: PointBatch,
    readonly now: number,
  ) {}
}

/** What a line-protocol write stored (InfluxDB answers 204 without a body; these go in headers). */
export interface LineProtocolReply {
  points: number;
  skippedStringFields: number;
}

export interface IngestReply {
  status: 'success';
  metrics_accepted: number;
  timestamp: string;
  batch_id: string;
}

/** Decodes each ingest shape into a PointBatch and hands it to the one writer; replies after commit. */
@Injectable()
export class IngestionService {
  private readonly limits: IngestLimits;
  /** Series validated in earlier requests, by their raw key: most requests repeat known series. */
  private readonly known: KnownSeriesIndex;
  /** The same for line protocol, by measurement and tags as sent. */
  private readonly lineSeries: LineSeriesIndex;
  /** The same for remote write and OTLP, by name, source, unit and tags as sent. */
  private readonly validated: ValidatedSeries;
  /** The same for the JSON scanner, by source and the bytes of name and tags. */
  private readonly scanned: ScanSeriesCache;
  /**
   * Bodies read by the scanner, by the slow path (JSON.parse + decode.ts), and refused by the
   * guard before either: for tests and tuning.
   */
  readonly jsonBodies = { scanned: 0, parsed: 0, refused: 0 };

  constructor(
    private readonly writer: PointWriter,
    private readonly config: AppConfig,
  ) {
    const i = config.ingest;
    this.limits = {
      maxPoints: i.maxPointsPerRequest,
      maxTags: i.maxTags,
      maxNameLength: i.maxNameLength,
      maxTagKeyLength: i.maxTagKeyLength,
      maxTagValueLength: i.maxTagValueLength,
      maxFutureMs: i.maxFutureMs,
      retentionDays: config.retentionDays,
    };
    this.known = new KnownSeriesIndex(config.series.cacheSize * 4);
    this.lineSeries = new LineSeriesIndex(config.series.cacheSize * 2);
    this.validated = new BoundedCache(config.series.cacheSize);
    this.scanned = new ScanSeriesCache(config.series.cacheSize * 2);
  }

  /**
   * The body readers of POST /api/v1/metrics and /batch (installJsonParser): the common shapes go
   * from bytes to a batch (a ScannedBody); anything else (undefined) is parsed and decoded as before.
   */
  jsonFastPaths(): Record<string, JsonFastPath> {
    const reader =
      (shape: 'submission' | 'batches'): JsonFastPath =>
      (body, query) => {
        // A bad precision (any value not in PRECISIONS, a repeated one included) throws here: the
        // JSON parser then declines the fast path and the handler answers the 400.
        const ctx = this.context(query.precision as string | undefined);
        const batch = (shape === 'batches' ? scanBatches : scanSubmission)(body, ctx, this.scanned);
        return batch && new ScannedBody(batch, ctx.now);
      };
    return { '/api/v1/metrics': reader('submission'), '/api/v1/metrics/batch': reader('batches') };
  }

  /**
   * What the JSON ingest routes refuse from a large body's bytes, before parsing it: a point with
   * more tags than INGEST_MAX_TAGS (tag-guard.ts), which decode.ts would refuse after JSON.parse.
   */
  jsonGuards(): Record<string, JsonGuard> {
    const limits = this.limits;
    const guard =
      (shape: IngestShape): JsonGuard =>
      (body) => {
        const field = oversizedTags(body, shape, limits);
        if (field === undefined) return undefined;
        this.jsonBodies.refused++;
        return fieldErrors([{ field, message: tooManyTagsMessage(limits.maxTags) }]);
      };
    return {
      '/api/v1/metrics': guard('submission'),
      '/api/v1/metrics/batch': guard('batches'),
      '/api/v2/app/:appId/metrics': guard('app'),
    };
  }

  submit(body: unknown, precision?: string): Promise<IngestReply> {
    if (body instanceof ScannedBody) return this.scannedBody(body, 'json');
    const ctx = this.context(precision);
    this.jsonBodies.parsed++;
    return this.store(decodeSubmission(body, ctx), ctx.now, 'json');
  }

  submitBatches(body: unknown, precision?: string): Promise<IngestReply> {
    if (body instanceof ScannedBody) return this.scannedBody(body, 'json_batch');
    const ctx = this.context(precision);
    this.jsonBodies.parsed++;
    return this.store(decodeBatches(body, ctx), ctx.now, 'json_batch');
  }

  private scannedBody(body: ScannedBody, protocol: string): Promise<IngestReply> {
    this.jsonBodies.scanned++;
    return this.store(body.batch, body.now, protocol);
  }

  /** JSON (`app_v2`), or Avro when the body came as bytes (`avro`: avro.ts). */
  submitApp(appId: string, body: unknown): Promise<IngestReply> {
    // Epoch ms by the reference; a number that looks like seconds or microseconds gets its hint.
    const ctx = this.context(undefined);
    if (Buffer.isBuffer(body))
      return this.store(decodeAvroMetrics(appId, body, ctx, this.config.ingest.maxBodyBytes), ctx.now, 'avro');
    return this.store(decodeAppMetrics(appId, body, ctx), ctx.now, 'app_v2');
  }

  /**
   * InfluxDB line protocol (`/api/v2/write`, `/write`): `source` is the bucket or database,
   * `parameter` its query parameter's name for errors. Resolves after the commit.
   */
  async writeLineProtocol(
    body: string | Buffer,
    source: string,
    parameter: string,
    precision: LineProtocolPrecision,
    protocol: 'influx_v2' | 'influx_v1',
  ): Promise<LineProtocolReply> {
    const bad = sourceProblem(source, this.limits);
    if (bad) throw invalidQuery(parameter, `${parameter} ${bad}`);
    const ctx = this.context(undefined);
    const { batch, skippedStringFields } = parseLineProtocol(body, source, precision, ctx, this.lineSeries);
    await this.writer.write(batch, protocol);
    return { points: batch.length, skippedStringFields };
  }

  /**
   * Prometheus remote write 1.0: a snappy-compressed WriteRequest (remote-write.ts). Resolves after
   * the commit; the caller answers 204. Skipped samples (stale markers, NaN/Inf, native histograms)
   * are counted once the rest is stored.
   */
  async remoteWrite(body: unknown, headers: Record<string, string | string[] | undefined>): Promise<void> {
    const header = (name: string) => (typeof headers[name] === 'string' ? (headers[name] as string) : undefined);
    const version = remoteWriteVersionProblem(header('content-type'), header('x-prometheus-remote-write-version'));
    if (version) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', version, { header: 'content-type' });
    const encoding = remoteWriteEncodingProblem(header('content-encoding')); // also refused before the body is read
    if (encoding) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', encoding, { header: 'content-encoding' });
    if (!Buffer.isBuffer(body) || body.length === 0)
      throw invalidRequest('Remote write body is empty: a snappy-compressed prometheus.WriteRequest is expected', {
        field: 'body',
      });
    const ctx = this.context(undefined);
    const { batch, skipped } = decodeRemoteWrite(unsnappy(body, this.config.ingest.maxBodyBytes), ctx, this.validated);
    await this.store(batch, ctx.now, 'remote_write');
    for (const [reason, n] of Object.entries(skipped)) this.writer.noteSkipped(n, 'remote_write', reason);
  }

  /**
   * OTLP/HTTP metrics, protobuf (a Buffer) or JSON (otlp.ts). Resolves after the commit with the
   * ExportMetricsServiceResponse in the request's encoding (partial_success for points not stored).
   */
  async otlp(body: unknown, protobuf: boolean): Promise<Buffer | Json> {
    const request = protobuf ? otlpProtobufToJson(Buffer.isBuffer(body) ? body : Buffer.alloc(0)) : (body ?? {});
    const ctx = this.context(undefined);
    const result = decodeOtlp(request, ctx, this.validated);
    await this.store(result.batch, ctx.now, 'otlp');
    for (const [reason, n] of Object.entries(result.rejectedBy)) this.writer.noteSkipped(n, 'otlp', reason);
    this.writer.noteSkipped(result.noRecordedValue, 'otlp', 'stale');
    return otlpResponse(result, protobuf ? 'protobuf' : 'json');
  }

  private context(precision: string | undefined): DecodeContext {
    if (precision !== undefined && !PRECISIONS.includes(precision as Precision)) {
      throw invalidQuery('precision', `precision must be one of ${PRECISIONS.join(', ')}`);
    }
    // Retention follows PUT /api/v1/config: read it per request.
    const limits =
      this.limits.retentionDays === this.config.retentionDays
        ? this.limits
        : { ...this.limits, retentionDays: this.config.retentionDays };
    return { now: Date.now(), precision: precision as Precision | undefined, limits, known: this.known };
  }

  /** `protocol` labels the points in the self-metrics (timescope_ingest_points_*_total). */
  private async store(batch: PointBatch, now: number, protocol = 'other'): Promise<IngestReply> {
    await this.writer.write(batch, protocol);
    return {
      status: 'success',
      metrics_accepted: batch.length,
      timestamp: new Date().toISOString(),
      batch_id: `batch_${now.toString(36)}${randomBytes(4).toString('hex')}`,
    };
  }
}
