import { Injectable } from '@nestjs/common';
import pg from 'pg';
import type { Queryable } from '../database/database.js';
import { PartitionService } from '../storage/partitions.js';
import type { TimeRange } from './retention-plan.js';

/** All SQL of retention: chunks or partitions of a table, and dropping them (what a table is: StorageCatalog). */
@Injectable()
export class RetentionRepository {
  constructor(private readonly partitions: PartitionService) {}

  /** Chunks of a hypertable, or of a continuous aggregate's materialisation hypertable, with their time ranges. */
  async chunks(client: Queryable, table: string, layout: 'hypertable' | 'continuous_aggregate'): Promise<TimeRange[]> {
    const r = await client.query<{ name: string; f: number | null; t: number | null }>(
      layout === 'hypertable'
        ? `SELECT chunk_name AS name, (extract(epoch FROM range_start) * 1000)::float8 AS f, (extract(epoch FROM range_end) * 1000)::float8 AS t
           FROM timescaledb_information.chunks WHERE hypertable_schema = current_schema() AND hypertable_name = $1`
        : `SELECT c.chunk_name AS name, (extract(epoch FROM c.range_start) * 1000)::float8 AS f, (extract(epoch FROM c.range_end) * 1000)::float8 AS t
           FROM timescaledb_information.continuous_aggregates a
           JOIN timescaledb_information.chunks c ON c.hypertable_schema = a.materialization_hypertable_schema AND c.hypertable_name = a.materialization_hypertable_name
           WHERE a.view_schema = current_schema() AND a.view_name = $1`,
      [table],
    );
    // Integer-time hypertables have no timestamp range: never treated as expired.
    return r.rows.map((x) => ({ name: x.name, from: x.f ?? -Infinity, to: x.t ?? Infinity }));
  }

  partitionsOf(client: Queryable, table: string): Promise<TimeRange[]> {
    return this.partitions.list(table, client);
  }

  /** TimescaleDB drops every chunk that ends at or before `cutoff`; returns their names. */
  async dropChunks(client: Queryable, table: string, cutoff: number): Promise<string[]> {
    const r = await client.query<{ chunk: string }>(
      `SELECT drop_chunks($1::regclass, older_than => $2::timestamptz) AS chunk`,
      [table, new Date(cutoff).toISOString()],
    );
    return r.rows.map((x) => x.chunk.replace(/^.*\./, ''));
  }

  /**
   * Detaches a partition without blocking readers and writers of the parent (CONCURRENTLY), then
   * drops it. Another instance (or an earlier, interrupted run) may have done part of it already.
   */
  async dropPartition(client: Queryable, parent: string, partition: string): Promise<boolean> {
    const ident = (n: string) => pg.escapeIdentifier(n);
    const attached = await client.query<{ pending: boolean }>(
      `SELECT i.inhdetachpending AS pending FROM pg_inherits i WHERE i.inhrelid = to_regclass($1) AND i.inhparent = to_regclass($2)`,
      [partition, parent],
    );
    try {
      if (attached.rows[0]?.pending)
        await client.query(`ALTER TABLE ${ident(parent)} DETACH PARTITION ${ident(partition)} FINALIZE`);
      else if (attached.rows[0])
        await client.query(`ALTER TABLE ${ident(parent)} DETACH PARTITION ${ident(partition)} CONCURRENTLY`);
    } catch (err) {
      // Lost a race with another dropper: the partition is gone or no longer attached.
      const still = await client.query(
        `SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)`,
        [partition, parent],
      );
      if ((still.rowCount ?? 0) > 0) throw err;
    }
    const r = await client.query<{ existed: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS existed`, [partition]);
    await client.query(`DROP TABLE IF EXISTS ${ident(partition)}`);
    return r.rows[0].existed;
  }

  /** Holds another job's advisory lock for the rest of this session's run (released by unlockJob). */
  async lockJob(client: Queryable, namespace: number, key: number): Promise<void> {
    await client.query('SELECT pg_advisory_lock($1, $2)', [namespace, key]);
  }

  async unlockJob(client: Queryable, namespace: number, key: number): Promise<void> {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [namespace, key]).catch(() => undefined);
  }
}
