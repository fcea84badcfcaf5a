import { Injectable } from '@nestjs/common';
import pg from 'pg';
import { Database, Queryable } from '../database/database.js';
import { PartitionService } from './partitions.js';

/** How a table is split by time, which decides how whole pieces of it are dropped. */
export type TableLayout = 'hypertable' | 'continuous_aggregate' | 'partitioned' | 'none';

/**
 * What the catalogue says about stored data where the flavours differ: how a table is split by
 * time (for retention), how well points compress and the oldest point (for the performance report).
 */
@Injectable()
export class StorageCatalog {
  constructor(
    private readonly database: Database,
    private readonly partitions: PartitionService,
  ) {}

  async layout(client: Queryable, table: string): Promise<TableLayout> {
    if (this.database.info.flavour === 'timescaledb') {
      const r = await client.query<{ kind: TableLayout }>(
        `SELECT 'hypertable' AS kind FROM timescaledb_information.hypertables WHERE hypertable_schema = current_schema() AND hypertable_name = $1
         UNION ALL
         SELECT 'continuous_aggregate' FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema() AND view_name = $1`,
        [table],
      );
      if (r.rows[0]) return r.rows[0].kind;
    }
    const p = await client.query(`SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass($1)`, [table]);
    return (p.rowCount ?? 0) > 0 ? 'partitioned' : 'none';
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
      const r = await this.database.readPool.query<{ t: Date | null }>(
        `SELECT min(time) AS t FROM ${pg.escapeIdentifier(p.name)}`,
      );
      if (r.rows[0].t) return r.rows[0].t;
    }
    return null;
  }
}
