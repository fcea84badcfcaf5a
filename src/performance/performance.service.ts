import { Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { rollupRetentionDays } from '../retention/retention-plan.js';
import { PointWriter } from '../storage/point-writer.js';
import { SeriesResolver } from '../storage/series-resolver.js';
import { StorageCatalog } from '../storage/storage-catalog.js';
import { formatBytes } from '../system/health.service.js';
import { PerformanceRepository } from './performance.repository.js';
import { WindowStats } from './window-stats.js';

const STORAGE_CACHE_MS = 60_000;
const INGEST_ROUTES = new Set(['/api/v1/metrics', '/api/v1/metrics/batch']);

/** Routes that answer questions about stored data (everything under /api/v1/metrics except ingest). */
export function isQueryRoute(url: string | undefined): boolean {
  return url !== undefined && url.startsWith('/api/v1/metrics/') && !INGEST_ROUTES.has(url.replace(/\/$/, ''));
}

/**
 * GET /api/v1/system/performance (collector-api.md, "Performance Metrics"): ingestion from the
 * writer's meters, storage from the catalogue (cached for a minute), queries from the response
 * times of the query routes over the last minute, and the self-alert thresholds of PUT /api/v1/config.
 */
@Injectable()
export class PerformanceService implements OnModuleInit {
  private readonly queries = new WindowStats(60);
  private readonly queryErrors = new WindowStats(60);
  private storageCache?: { at: number; value: Awaited<ReturnType<PerformanceService['loadStorage']>> };

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly writer: PointWriter,
    private readonly resolver: SeriesResolver,
    private readonly repo: PerformanceRepository,
    private readonly catalog: StorageCatalog,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    // Timed where the response leaves, so the query modules stay unaware of it.
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', (request, reply, done) => {
      if (isQueryRoute(request.routeOptions?.url)) {
        this.queries.add(reply.elapsedTime);
        if (reply.statusCode >= 500) this.queryErrors.add(1);
      }
      done();
    });
  }

  async performance() {
    const w = this.writer;
    const rate = w.meter.rate();
    const cache = this.resolver.cache;
    const lookups = cache.hits + cache.misses;
    const q = this.queries.totals();
    const avgMs = q.count > 0 ? q.sum / q.count : null;
    const storage = await this.storage();
    return {
      ingestion: {
        rate: `${Math.round(rate)} metrics/sec`,
        rate_per_second: Math.round(rate * 100) / 100,
        peak_rate: `${Math.round(w.meter.peak)} metrics/sec`,
        peak_rate_per_second: Math.round(w.meter.peak * 100) / 100,
        total_metrics: w.meter.total,
        queue_size: w.pendingPoints,
        queue_max: w.capacity,
        series_cache_hit_rate: lookups > 0 ? Math.round((cache.hits / lookups) * 1000) / 1000 : null,
      },
      storage,
      queries: {
        avg_response_time: avgMs === null ? null : `${Math.round(avgMs)}ms`,
        avg_response_time_ms: avgMs === null ? null : Math.round(avgMs * 100) / 100,
        queries_per_minute: q.count,
        errors_per_minute: this.queryErrors.totals().count,
        // Timescope keeps no query result cache: every answer is read from the database.
        cache_hit_rate: null,
      },
      alerts: this.alerts(rate),
      timestamp: toIso(Date.now()),
    };
  }

  /** The service's own thresholds (alerting.* in PUT /api/v1/config) that are crossed now. */
  private alerts(rate: number) {
    const a = this.config.alerting;
    if (!a.enabled) return [];
    const out: Array<{ threshold: string; value: number; limit: number; message: string }> = [];
    const queue = this.writer.pendingPoints;
    if (a.queueSize > 0 && queue > a.queueSize)
      out.push({
        threshold: 'queue_size',
        value: queue,
        limit: a.queueSize,
        message: `${queue} points wait to be written (threshold ${a.queueSize})`,
      });
    if (a.ingestionRate > 0 && rate > a.ingestionRate) {
      out.push({
        threshold: 'ingestion_rate',
        value: Math.round(rate),
        limit: a.ingestionRate,
        message: `ingesting ${Math.round(rate)} points/s (threshold ${a.ingestionRate})`,
      });
    }
    return out;
  }

  private async storage() {
    if (!this.storageCache || Date.now() - this.storageCache.at > STORAGE_CACHE_MS)
      this.storageCache = { at: Date.now(), value: await this.loadStorage() };
    // Retention is a live setting: never served from the cache.
    const days = this.config.retentionDays,
      rollup = rollupRetentionDays(days, this.config.retention.rollupDays);
    return {
      ...this.storageCache.value,
      retention_policy: days > 0 ? `${days} days` : 'forever',
      rollup_retention_policy: rollup > 0 ? `${rollup} days` : 'forever',
    };
  }

  private async loadStorage() {
    const [size, ratio, oldest] = await Promise.all([
      this.repo.databaseSize(),
      this.catalog.compressionRatio(),
      this.catalog.oldestPoint(),
    ]);
    return {
      total_size: formatBytes(size),
      total_size_bytes: size,
      compression_ratio: ratio === null ? null : Math.round(ratio * 1000) / 1000,
      oldest_data: oldest ? oldest.toISOString() : null,
      measured_at: toIso(Date.now()),
    };
  }
}
