import { Injectable, OnModuleInit } from '@nestjs/common';
import { DAY } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import { PartitionService } from './partitions.js';
import { PointWriter } from './point-writer.js';
import { RollupService } from './rollups.js';

/** Its advisory lock is also held by retention while it drops chunks (src/database/advisory-locks.ts). */
export const ROLLUP_REFRESH_JOB = 'rollup-refresh';

/**
 * After this many points written below the rollup watermark (a bulk load, a backfill), the writer
 * asks for a rollup refresh at once instead of leaving queries on raw points until the next
 * scheduled run.
 */
export const REFRESH_AFTER_LATE_POINTS = 100_000;
/** Fewer late points than that: a refresh within this many ms (sooner than the schedule's 30 s). */
export const LATE_REFRESH_DELAY_MS = 5_000;

/** Storage upkeep: rollup refresh (both flavours), partitions ahead of time (PostgreSQL), compression (TimescaleDB). */
@Injectable()
export class StorageJobs implements OnModuleInit {
  constructor(
    private readonly jobs: JobsService,
    private readonly rollups: RollupService,
    private readonly partitions: PartitionService,
    private readonly database: Database,
    private readonly config: AppConfig,
    private readonly writer: PointWriter,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.partitions.load();
    // Late points reported since the last refresh started: whatever was written before a run
    // starts is re-aggregated by it (it reads the pending ranges later), so each run, scheduled
    // or asked for, starts the count again.
    let late = 0;
    this.jobs.register({
      name: ROLLUP_REFRESH_JOB,
      description:
        'Materialises the 1m/5m/1h/1d rollups up to now minus ROLLUP_LAG_SECONDS and re-aggregates late points',
      every: () => this.config.rollups.refreshSeconds * 1000,
      run: ({ client }) => {
        late = 0;
        return this.rollups.refresh(client);
      },
    });
    // Late points: a run soon (a few late points wait a little, to gather more), at once after many.
    this.writer.onLatePoints((n) => {
      late += n;
      if (late < REFRESH_AFTER_LATE_POINTS) return this.jobs.requestRun(ROLLUP_REFRESH_JOB, LATE_REFRESH_DELAY_MS);
      // Also reset here: a run skipped here (running on another instance) does not reset it, and
      // each further late point would then ask for another run at once.
      late = 0;
      this.jobs.requestRun(ROLLUP_REFRESH_JOB);
    });
    if (this.database.info.flavour === 'postgresql') {
      this.jobs.register({
        name: 'partition-premake',
        description: `Creates the partitions of points, rollups and events for the next PARTITION_PREMAKE_DAYS days`,
        every: () => this.config.maintenance.partitionPremakeSeconds * 1000,
        run: async ({ client }) => {
          const now = Date.now();
          const made: Record<string, number> = {};
          for (const { table, widthMs } of this.partitions.partitioned) {
            const times: number[] = [];
            for (let t = now; t <= now + this.config.rollups.partitionPremakeDays * DAY; t += Math.min(widthMs, DAY))
              times.push(t);
            made[table] = await this.partitions.ensure(table, times, client);
          }
          return { created: made };
        },
      });
    } else {
      this.jobs.register({
        name: 'compression',
        description: 'Compresses points chunks older than two days (segmented by series, ordered by time)',
        every: () => this.config.maintenance.compressionSeconds * 1000,
        enabled: () => this.config.maintenance.compressionEnabled,
        run: async ({ client }) => {
          const r = await client.query(
            `SELECT compress_chunk(c, if_not_compressed => true) AS chunk FROM show_chunks('points', older_than => INTERVAL '2 days') c`,
          );
          return { chunks_compressed: r.rowCount };
        },
      });
    }
  }
}
