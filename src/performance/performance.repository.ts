import { Injectable } from '@nestjs/common';
import pg from 'pg';
import { Database } from '../database/database.js';
import { PartitionService } from '../storage/partitions.js';

/** The SQL behind GET /api/v1/system/performance: sizes, compression, the oldest point. */
@Injectable()
export class PerformanceRepository {
  constructor(
    private readonly database: Database,
    private readonly partitions: PartitionService,
  ) {}

  async databaseSize(): Promise<number> {
    return (await this.database.readPool.query<{ n: number }>(`SELECT pg_database_size(current_database()) AS n`)).rows[0].n;
  }

  /** Compressed size over uncompressed size of the compressed points chunks (TimescaleDB); null when nothing is compressed. */
  async compressionRatio(): Promise<number | null> {
    if (this.database.info.flavour !== 'timescaledb') return null;
    const r = await this.database.readPool.query<{ ratio: number | null }>(
      `SELECT sum(after_compression_total_bytes)::float8 / nullif(sum(before_compression_total_bytes), 0) AS ratio
       FROM hypertable_compression_stats('points')`,
    );
    return r.rows[0]?.ratio ?? null;
  }

  /**
   * The oldest raw point. TimescaleDB: min(time) over the hypertable (its time index and chunk
   * exclusion make it cheap). PostgreSQL: the points index leads with series_id, so only the oldest
   * partition that has rows is scanned.
   */
  async oldestPoint(): Promise<Date | null> {
    if (this.database.info.flavour === 'timescaledb') {
      return (await this.database.readPool.query<{ t: Date | null }>(`SELECT min(time) AS t FROM points`)).rows[0].t;
    }
    for (const p of await this.partitions.list('points')) {
      const r = await this.database.readPool.query<{ t: Date | null }>(`SELECT min(time) AS t FROM ${pg.escapeIdentifier(p.name)}`);
      if (r.rows[0].t) return r.rows[0].t;
    }
    return null;
  }
}
