import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { invalidQuery } from '../common/errors.js';
import { Precision, PRECISIONS } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { PointWriter } from '../storage/point-writer.js';
import type { PointBatch } from '../storage/point-batch.js';
import { decodeAppMetrics, decodeBatches, decodeSubmission, DecodeContext, IngestLimits, KnownSeriesIndex, sourceProblem } from './decode.js';
import { LineProtocolPrecision, LineSeriesIndex, parseLineProtocol } from './line-protocol.js';

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
  }

  submit(body: unknown, precision?: string): Promise<IngestReply> {
    const ctx = this.context(precision);
    return this.store(decodeSubmission(body, ctx), ctx.now, 'json');
  }

  submitBatches(body: unknown, precision?: string): Promise<IngestReply> {
    const ctx = this.context(precision);
    return this.store(decodeBatches(body, ctx), ctx.now, 'json_batch');
  }

  submitApp(appId: string, body: unknown): Promise<IngestReply> {
    const ctx = this.context('ms');
    return this.store(decodeAppMetrics(appId, body, ctx), ctx.now, 'app_v2');
  }

  /**
   * InfluxDB line protocol (`/api/v2/write`, `/write`): `source` is the bucket or database,
   * `parameter` its query parameter's name for errors. Resolves after the commit.
   */
  async writeLineProtocol(body: string | Buffer, source: string, parameter: string, precision: LineProtocolPrecision, protocol: 'influx_v2' | 'influx_v1'): Promise<LineProtocolReply> {
    const bad = sourceProblem(source, this.limits);
    if (bad) throw invalidQuery(parameter, `${parameter} ${bad}`);
    const ctx = this.context(undefined);
    const { batch, skippedStringFields } = parseLineProtocol(body, source, precision, ctx, this.lineSeries);
    await this.writer.write(batch, protocol);
    return { points: batch.length, skippedStringFields };
  }

  private context(precision: string | undefined): DecodeContext {
    if (precision !== undefined && !PRECISIONS.includes(precision as Precision)) {
      throw invalidQuery('precision', `precision must be one of ${PRECISIONS.join(', ')}`);
    }
    // Retention follows PUT /api/v1/config: read it per request.
    const limits = this.limits.retentionDays === this.config.retentionDays ? this.limits : { ...this.limits, retentionDays: this.config.retentionDays };
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
