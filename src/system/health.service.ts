import { Injectable } from '@nestjs/common';
import { humanUptime, toIso } from '../common/time.js';
import { STARTED_AT, VERSION } from '../common/version.js';
import { Database } from '../database/database.js';
import { PointWriter } from '../storage/point-writer.js';

export type ComponentStatus = 'healthy' | 'degraded' | 'unhealthy';
export interface ComponentHealth {
  status: string;
  /** How this component weighs on the overall status. */
  level: ComponentStatus;
  [detail: string]: unknown;
}

/**
 * GET /health: every component reports itself; the database being unreachable makes the whole
 * service unhealthy (503). Other modules (the collector, streams) register their own component.
 */
@Injectable()
export class HealthService {
  private readonly components = new Map<string, () => Promise<ComponentHealth> | ComponentHealth>();

  constructor(
    private readonly database: Database,
    private readonly writer: PointWriter,
  ) {
    this.register('database', () => this.databaseHealth());
    this.register('metrics_processor', () => this.writerHealth());
  }

  register(name: string, check: () => Promise<ComponentHealth> | ComponentHealth): void {
    this.components.set(name, check);
  }

  async health() {
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
    const status: ComponentStatus = levels.includes('unhealthy') ? 'unhealthy' : levels.includes('degraded') ? 'degraded' : 'healthy';
    const uptimeSeconds = Math.floor((Date.now() - STARTED_AT) / 1000);
    return {
      status,
      service: 'timescope',
      version: VERSION,
      uptime: humanUptime(uptimeSeconds),
      uptime_seconds: uptimeSeconds,
      timestamp: toIso(Date.now()),
      components: Object.fromEntries(entries.map(([name, { level: _level, ...rest }]) => [name, rest])),
    };
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
    try {
      const ms = await this.database.ping();
      const size = await this.database.readPool.query<{ bytes: number }>('SELECT pg_database_size(current_database()) AS bytes');
      return {
        status: 'connected',
        level: 'healthy',
        flavour: info.flavour,
        engine: info.pglite ? 'pglite' : 'postgresql',
        server_version: info.serverVersion.split(' on ')[0],
        response_time: `${Math.max(1, Math.round(ms))}ms`,
        response_time_ms: Math.round(ms * 100) / 100,
        database_size: formatBytes(size.rows[0].bytes),
        database_size_bytes: size.rows[0].bytes,
        pool: this.database.poolStats(),
      };
    } catch (err) {
      return { status: 'unreachable', level: 'unhealthy', flavour: info.flavour, error: (err as Error).message };
    }
  }

  private writerHealth(): ComponentHealth {
    const w = this.writer;
    const full = w.pendingPoints >= w.capacity * 0.9;
    return {
      status: full ? 'saturated' : 'running',
      level: full ? 'degraded' : 'healthy',
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
