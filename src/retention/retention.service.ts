import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import type { Queryable } from '../database/database.js';
import { JOB_LOCK_NAMESPACE, jobLockKey } from '../database/advisory-locks.js';
import { JobsService } from '../jobs/jobs.service.js';
import { SettingsService } from '../settings/settings.service.js';
import { PartitionService } from '../storage/partitions.js';
import { StorageCatalog } from '../storage/storage-catalog.js';
import { ROLLUP_REFRESH_JOB } from '../storage/storage.jobs.js';
import { ROLLUP_TIERS } from '../storage/tiers.js';
import { expiredRanges, retentionCutoff, rollupRetentionDays } from './retention-plan.js';
import { RetentionRepository } from './retention.repository.js';

export interface RetentionTarget {
  /** A hypertable or continuous aggregate (TimescaleDB), or a range-partitioned table (PostgreSQL). */
  table: string;
  /** Days its rows are kept, read at each run (0: forever). */
  retentionDays: () => number;
  description?: string;
}

export interface TargetReport {
  table: string;
  layout: string;
  retention_days: number;
  cutoff: string | null;
  dropped: string[];
  remaining: number;
  error?: string;
}

/**
 * Time-based retention for every time-partitioned table: raw points (METRICS_RETENTION_DAYS),
 * rollups (ROLLUP_RETENTION_DAYS) and whatever other modules register (events, …). Drops whole
 * chunks (TimescaleDB `drop_chunks`) or whole partitions (PostgreSQL), never rows; a chunk or
 * partition goes only once all of it is past the cutoff.
 */
@Injectable()
export class RetentionService implements OnModuleInit {
  private readonly logger = new Logger('retention');
  private readonly targets = new Map<string, RetentionTarget>();

  constructor(
    private readonly repo: RetentionRepository,
    private readonly jobs: JobsService,
    private readonly partitions: PartitionService,
    private readonly catalog: StorageCatalog,
    private readonly config: AppConfig,
    private readonly settings: SettingsService,
  ) {}

  /** Adds a table to the retention job. Its layout is looked up at each run, so the table may be created later. */
  register(target: RetentionTarget): void {
    if (this.targets.has(target.table)) throw new Error(`retention for ${target.table} registered twice`);
    this.targets.set(target.table, target);
  }

  onModuleInit(): void {
    this.register({ table: 'points', retentionDays: () => this.config.retentionDays, description: 'raw points' });
    for (const tier of ROLLUP_TIERS) {
      this.register({
        table: tier.table,
        retentionDays: () => rollupRetentionDays(this.config.retentionDays, this.config.retention.rollupDays),
        description: `${tier.label} rollup`,
      });
    }
    this.jobs.register({
      name: 'retention',
      description:
        'Drops whole chunks/partitions past their retention: raw points after METRICS_RETENTION_DAYS, rollups after ROLLUP_RETENTION_DAYS',
      every: () => this.config.retention.intervalSeconds * 1000,
      run: ({ client }) => this.apply(client),
    });
  }

  list(): Array<{ table: string; retention_days: number; description: string | null }> {
    return [...this.targets.values()].map((t) => ({
      table: t.table,
      retention_days: t.retentionDays(),
      description: t.description ?? null,
    }));
  }

  /**
   * One pass over every registered table. Holds the rollup refresh's lock meanwhile, so a refresh
   * never re-materialises a continuous aggregate over raw chunks being dropped. Idempotent: a second
   * run, or one racing on another connection, finds nothing more to drop.
   */
  async apply(client: Queryable, now = Date.now()): Promise<Record<string, unknown>> {
    const refreshLock = jobLockKey(ROLLUP_REFRESH_JOB);
    await this.repo.lockJob(client, JOB_LOCK_NAMESPACE, refreshLock);
    // Dropping is for good: decide on the retention as stored now, not as this instance last polled
    // it (a change made through another instance reaches it only every few seconds).
    await this.settings.refresh(client);
    const reports: TargetReport[] = [];
    let droppedPartitions = false;
    try {
      for (const target of this.targets.values()) {
        const report = await this.applyOne(client, target, now).catch((err: unknown): TargetReport => ({
          table: target.table,
          layout: 'unknown',
          retention_days: target.retentionDays(),
          cutoff: null,
          dropped: [],
          remaining: 0,
          error: (err as Error).message,
        }));
        if (report.layout === 'partitioned' && report.dropped.length > 0) droppedPartitions = true;
        reports.push(report);
      }
    } finally {
      await this.repo.unlockJob(client, JOB_LOCK_NAMESPACE, refreshLock);
      // The writer and the rollup refresh remember which partitions exist.
      if (droppedPartitions) {
        this.partitions.forget();
        await this.partitions.load().catch(() => undefined);
      }
    }
    const dropped = reports.reduce((n, r) => n + r.dropped.length, 0);
    const failed = reports.filter((r) => r.error);
    if (dropped > 0)
      this.logger.log(
        `dropped ${dropped} chunk(s)/partition(s): ${reports
          .filter((r) => r.dropped.length)
          .map((r) => `${r.table} ${r.dropped.length}`)
          .join(', ')}`,
      );
    if (failed.length > 0) {
      // Recorded as a failed run (with what was done) so that it shows in GET /api/v1/system/jobs.
      throw new Error(failed.map((r) => `${r.table}: ${r.error}`).join('; '));
    }
    return { dropped, tables: reports };
  }

  /** Whether data ending at `end` is still past `target`'s retention, the stored settings read again. */
  private async stillExpired(client: Queryable, target: RetentionTarget, now: number, end: number): Promise<boolean> {
    await this.settings.refresh(client);
    const cutoff = retentionCutoff(now, target.retentionDays());
    return cutoff !== null && end <= cutoff;
  }

  private async applyOne(client: Queryable, target: RetentionTarget, now: number): Promise<TargetReport> {
    const days = target.retentionDays();
    const cutoff = retentionCutoff(now, days);
    const layout = await this.catalog.layout(client, target.table);
    const base = { table: target.table, layout, retention_days: days, cutoff: cutoff === null ? null : toIso(cutoff) };
    if (layout === 'none')
      return {
        ...base,
        dropped: [],
        remaining: 0,
        error: 'not a hypertable, continuous aggregate or partitioned table',
      };
    const ranges =
      layout === 'partitioned'
        ? await this.repo.partitionsOf(client, target.table)
        : await this.repo.chunks(client, target.table, layout);
    const expired = expiredRanges(ranges, cutoff);
    const dropped: string[] = [];
    if (expired.length > 0 && cutoff !== null) {
      if (layout === 'partitioned') {
        for (const p of expired) {
          // Each drop on the retention as it is then: raised (here or through another instance)
          // while this run goes on, it keeps what it now covers.
          if (!(await this.stillExpired(client, target, now, p.to))) break;
          if (await this.repo.dropPartition(client, target.table, p.name)) dropped.push(p.name);
        }
      } else if (await this.stillExpired(client, target, now, cutoff)) {
        dropped.push(...(await this.repo.dropChunks(client, target.table, cutoff)));
      }
    }
    // What is left: a run that stopped early (the retention was raised meanwhile) kept more.
    return { ...base, dropped, remaining: ranges.length - dropped.length };
  }
}
