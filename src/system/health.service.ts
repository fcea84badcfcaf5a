import { Injectable } from '@nestjs/common';
import type pg from 'pg';
import { isDatabaseUnavailable } from '../common/error-envelope.js';
import { humanUptime, toIso } from '../common/time.js';
import { STARTED_AT, VERSION } from '../common/version.js';
import { AppConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import { PointWriter } from '../storage/point-writer.js';

export type ComponentStatus = 'healthy' | 'degraded' | 'unhealthy';
export interface ComponentHealth {
  status: string;
  /** How this component weighs on the overall status. */
  level: ComponentStatus;
  [detail: string]: unknown;
}

/** How long /health waits for a connection of a busy read pool before it reports the pool busy instead. */
const POOL_WAIT_MS = 1_000;
/** Server-side limits of the health queries, so that they never queue behind a lock. */
const HEALTH_STATEMENT_TIMEOUT_MS = 2_000;

/**
 * The writer's state: `stalled` when the oldest write still waiting for its commit has waited
 * `stallMs` or longer (a lock on points, a stuck disk, a backlog that deep); `saturated` when the
 * ingest buffer is 90% full. Both degrade the service; neither makes it unhealthy.
 */
export function writerState(
  pendingPoints: number,
  capacity: number,
  oldestPendingMs: number,
  stallMs: number,
): { status: string; level: ComponentStatus } {
  if (pendingPoints > 0 && oldestPendingMs >= stallMs) return { status: 'stalled', level: 'degraded' };
  if (pendingPoints >= capacity * 0.9) return { status: 'saturated', level: 'degraded' };
  return { status: 'running', level: 'healthy' };
}

/**
 * GET /health: every component reports itself; the database being unreachable makes the whole
 * service unhealthy (503). Other modules (the collector, streams) register their own component.
 * It answers within about a second whatever the database is doing: its queries wait for no lock,
 * and a read pool that stays busy is reported as such (degraded) rather than waited for.
 */
@Injectable()
export class HealthService {
  private readonly components = new Map<string, () => Promise<ComponentHealth> | ComponentHealth>();

  constructor(
    private readonly database: Database,
    private readonly writer: PointWriter,
    private readonly config: AppConfig,
  ) {
    this.register('database', () => this.databaseHealth());
    this.register('metrics_processor', () => this.writerHealth());
  }

  register(name: string, check: () => Promise<ComponentHealth> | ComponentHealth): void {
    this.components.set(name, check);
  }

  async health() {
    const { status, components } = await this.check();
    const uptimeSeconds = Math.floor((Date.now() - STARTED_AT) / 1000);
    return {
      status,
      service: 'timescope',
      version: VERSION,
      uptime: humanUptime(uptimeSeconds),
      uptime_seconds: uptimeSeconds,
      timestamp: toIso(Date.now()),
      components: Object.fromEntries(components.map(([name, { level: _level, ...rest }]) => [name, rest])),
    };
  }

  /** Every component's report with its level, and the overall status (GET /health, /api/v1/monitoring/health/detailed). */
  async check(): Promise<{ status: ComponentStatus; components: Array<[string, ComponentHealth]> }> {
    const entries = await Promise.all(
      [...this.components].map(async ([name, check]): Promise<[string, ComponentHealth]> => {
        try {
          return [name, await check()];
        } catch (err) {
          return [name, { status: 'error', level: 'degraded', error: (err as Error).message }];
        }
      }),
    );
    const levels = entries.map(([, c]) => c.level);
    const status: ComponentStatus = levels.includes('unhealthy')
      ? 'unhealthy'
      : levels.includes('degraded')
        ? 'degraded'
        : 'healthy';
    return { status, components: entries };
  }

  async ready(): Promise<boolean> {
    try {
      await this.database.ping();
      return true;
    } catch {
      return false;
    }
  }

  private async databaseHealth(): Promise<ComponentHealth> {
    const info = this.database.info;
    const probe = this.probeDatabase(); // answered below, or after the pool wait
    // The query API's bucket reads have a pool of their own: only when reads already wait for it
    // does a SELECT 1 there tell whether a connection frees up in time.
    const buckets = this.database.bucketPool;
    const [early, bucketsEarly] = await Promise.all([
      answeredWithin(probe, POOL_WAIT_MS),
      buckets && buckets.waitingCount > 0 ? answeredWithin(buckets.query('SELECT 1'), POOL_WAIT_MS) : true,
    ]);
    if (
      (!early && this.database.readPool.waitingCount > 0) ||
      (!bucketsEarly && buckets !== undefined && buckets.waitingCount > 0)
    ) {
      // Every connection of a read pool is taken (queries waiting behind a lock, long exports): the
      // database may be fine, the service is not answering reads promptly.
      return {
        status: 'busy',
        level: 'degraded',
        flavour: info.flavour,
        message: `no read connection was free within ${POOL_WAIT_MS / 1000} s`,
        pool: this.database.poolStats(),
      };
    }
    try {
      const { ms, bytes, sizeMs } = await probe;
      return {
        status: 'connected',
        level: 'healthy',
        flavour: info.flavour,
        engine: info.pglite ? 'pglite' : 'postgresql',
        server_version: info.serverVersion.split(' on ')[0],
        response_time: `${Math.max(1, Math.round(ms))}ms`,
        response_time_ms: Math.round(ms * 100) / 100,
        database_size: formatBytes(bytes),
        database_size_bytes: bytes,
        size_query_ms: Math.round(sizeMs * 100) / 100,
        pool: this.database.poolStats(),
      };
    } catch (err) {
      // The server answered, with an error of its own (a health query past its timeout): slow, not down.
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !isDatabaseUnavailable(err)) {
        return {
          status: 'slow',
          level: 'degraded',
          flavour: info.flavour,
          error: (err as Error).message,
          pool: this.database.poolStats(),
        };
      }
      return { status: 'unreachable', level: 'unhealthy', flavour: info.flavour, error: (err as Error).message };
    }
  }

  /** Round trip of `SELECT 1` and the database size, on one connection; the size query waits for no lock. */
  private async probeDatabase(): Promise<{ ms: number; bytes: number; sizeMs: number }> {
    const client = await this.database.readPool.connect();
    let broken: Error | undefined;
    try {
      const t0 = performance.now();
      await client.query('SELECT 1');
      const ms = performance.now() - t0;
      // One round trip; PGlite serves one session and has no timeouts to set.
      const limits = this.database.info.pglite
        ? ''
        : `SET LOCAL statement_timeout = ${HEALTH_STATEMENT_TIMEOUT_MS}; SET LOCAL lock_timeout = ${HEALTH_STATEMENT_TIMEOUT_MS};`;
      const t1 = performance.now();
      const results = (await client.query(
        `BEGIN READ ONLY; ${limits} SELECT pg_database_size(current_database()) AS bytes; COMMIT`,
      )) as unknown as pg.QueryResult<{ bytes: number }>[];
      return { ms, bytes: results.find((r) => r.command === 'SELECT')!.rows[0].bytes, sizeMs: performance.now() - t1 };
    } catch (err) {
      broken = err as Error; // maybe inside the failed transaction: not handed to the next caller
      throw err;
    } finally {
      client.release(broken);
    }
  }

  private writerHealth(): ComponentHealth {
    const w = this.writer;
    const oldest = w.oldestPendingMs();
    return {
      ...writerState(w.pendingPoints, w.capacity, oldest, this.config.ingest.stallMs),
      oldest_pending_seconds: Math.round(oldest / 100) / 10,
      write_stall_seconds: this.config.ingest.stallMs / 1000,
      queue_size: w.queuedPoints,
      pending_points: w.pendingPoints,
      queue_max: w.capacity,
      processing_rate: `${Math.round(w.meter.rate())} metrics/sec`,
      peak_rate: `${Math.round(w.meter.peak)} metrics/sec`,
      total_metrics: w.meter.total,
      transactions: w.stats.transactions,
      failures: w.stats.failures,
      last_commit: w.stats.lastCommitAt,
      last_error: w.stats.lastError,
    };
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)}${units[i]}`;
}

/** Whether `p` settles (either way) within `ms`; a later rejection is swallowed. */
async function answeredWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  p.catch(() => undefined);
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((r) => setTimeout(r, ms, false).unref()),
  ]);
}
