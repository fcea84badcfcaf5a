import { Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { ceilTo, DAY, floorTo, MINUTE, toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { ROLLUP_WATERMARK_LOCK } from '../database/advisory-locks.js';
import { Database, Queryable, transaction } from '../database/database.js';
import { PartitionService } from './partitions.js';
import { ROLLUP_TIERS, RollupTier } from './tiers.js';

export type RefreshReport = {
  flavour: string;
  watermark?: string | null;
  steps?: number;
  rows?: number;
  invalidations?: number;
  aggregates?: string[];
  /** Tables and partitions vacuumed: `rollup_invalidations` after deleting ranges, more after a large refresh. */
  vacuumed?: string[];
};

/**
 * After a refresh that wrote this many rollup rows re-aggregating late points (a bulk load, a
 * backfill) or catching up (a watermark advanced in more than one step), VACUUM ANALYZE: fresh
 * rows are not yet all-visible, so the index-only scans that serve queries would visit the heap,
 * and the planner has no statistics for new partitions, until autovacuum comes by. The rows of a
 * normal one-step advance do not count: with many series every run would otherwise vacuum.
 */
export const VACUUM_AFTER_ROWS = 10_000;

const INVALIDATIONS_PER_RUN = 20_000;

/**
 * Keeps rollups fresh. TimescaleDB: refreshes the continuous aggregates in order, up to (now −
 * ROLLUP_LAG_SECONDS); they track late data themselves, but show it only after a refresh, so the
 * watermark and the late ranges are kept as on plain PostgreSQL (readers take raw points there)
 * and each refresh deletes the ranges recorded before it began. Plain PostgreSQL: everything
 * before `rollup_state.watermark` is materialised; each run advances the watermark to
 * (now − ROLLUP_LAG_SECONDS) one day at a time, then
 * re-aggregates the series and time ranges recorded in `rollup_invalidations` by the writer
 * (points that arrived late or were backfilled below the watermark).
 */
@Injectable()
export class RollupService {
  private readonly logger = new Logger('rollups');

  constructor(
    private readonly database: Database,
    private readonly partitions: PartitionService,
    private readonly config: AppConfig,
  ) {}

  /** Runs on the job's own connection (which holds the job's advisory lock). */
  async refresh(client: Queryable, now = Date.now()): Promise<RefreshReport> {
    const target = floorTo(now - this.config.rollups.lagSeconds * 1000, MINUTE);
    return this.database.info.flavour === 'timescaledb'
      ? this.refreshContinuousAggregates(client, target)
      : this.refreshTables(client, target);
  }

  /** Epoch ms below which plain-PostgreSQL rollups are complete; null before the first refresh. */
  async watermark(q: Queryable = this.database.readPool): Promise<number | null> {
    if (this.database.info.flavour !== 'postgresql') return null;
    const r = await q.query<{ w: number | null }>(
      `SELECT (extract(epoch FROM watermark) * 1000)::float8 AS w FROM rollup_state WHERE id = 1`,
    );
    return r.rows[0]?.w ?? null;
  }

  private async refreshContinuousAggregates(client: Queryable, target: number): Promise<RefreshReport> {
    // First the watermark, under the writers' lock (they hold it shared until they commit): a
    // write committed after this sees the new watermark and records its late points; one committed
    // before is materialised by the refresh below, and so are the late ranges recorded until now.
    const covered = await transaction(client, async (tx) => {
      await tx.query(`SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(${ROLLUP_WATERMARK_LOCK})`);
      await tx.query(
        `UPDATE rollup_state SET watermark = greatest(watermark, to_timestamp($1::float8 / 1000)), refreshed_at = now() WHERE id = 1`,
        [target],
      );
      const r = await tx.query<{ id: string | null }>(`SELECT max(id) AS id FROM rollup_invalidations`);
      return r.rows[0]?.id ?? null;
    });
    const end = pg.escapeLiteral(toIso(target));
    // Start at the raw retention: refreshing over dropped chunks would empty the rollups there.
    const days = this.config.retentionDays;
    const start = days > 0 ? pg.escapeLiteral(toIso(floorTo(Date.now() - days * DAY, DAY))) + '::timestamptz' : 'NULL';
    for (const t of ROLLUP_TIERS) {
      // CALL cannot run inside a transaction block; tiers in order, each built from the one below.
      await client.query(`CALL refresh_continuous_aggregate('${t.table}', ${start}, ${end}::timestamptz)`);
    }
    const done =
      covered === null
        ? 0
        : ((await client.query(`DELETE FROM rollup_invalidations WHERE id <= $1`, [covered])).rowCount ?? 0);
    return {
      flavour: 'timescaledb',
      watermark: toIso(target),
      aggregates: ROLLUP_TIERS.map((t) => t.table),
      invalidations: done,
    };
  }

  private async refreshTables(client: Queryable, target: number): Promise<RefreshReport> {
    let steps = 0,
      rows = 0;
    let w = (await this.watermark(client)) ?? -Infinity;
    try {
      do {
        // Writers hold the watermark lock shared while they write: taking it exclusively waits for
        // them, and whatever they commit afterwards sees the new watermark (and records late points).
        const r = await transaction(client, async (tx) => {
          await tx.query(`SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(${ROLLUP_WATERMARK_LOCK})`);
          // Jump over stretches without any partition: there is nothing to aggregate there.
          const points = await this.partitions.list('points', tx);
          const next = points.find((p) => p.to > w);
          const start = next ? Math.min(Math.max(w, next.from), target) : target;
          const end = start < target ? Math.min(target, floorTo(start, DAY) + DAY) : target;
          let n = 0;
          if (start < end) {
            await this.ensureRollupPartitions(tx, start, end);
            n = await this.aggregate(tx, start, end, end);
          }
          await tx.query(
            `UPDATE rollup_state SET watermark = to_timestamp($1::float8 / 1000), refreshed_at = now() WHERE id = 1`,
            [end],
          );
          return { end, n };
        });
        w = r.end;
        rows += r.n;
        steps++;
      } while (w < target);
      const inv = await this.processInvalidations(client, w);
      if (steps > 1) this.logger.log(`rollups advanced in ${steps} steps to ${toIso(w)} (${rows} rows)`);
      const report: RefreshReport = {
        flavour: 'postgresql',
        watermark: toIso(w),
        steps,
        rows: rows + inv.rows,
        invalidations: inv.count,
      };
      const caughtUp = steps > 1 ? rows : 0;
      const large = caughtUp + inv.rows >= VACUUM_AFTER_ROWS;
      if (large || inv.count > 0) report.vacuumed = await this.vacuum(client, large ? inv.days : undefined);
      return report;
    } catch (err) {
      // Partitions made inside a rolled-back transaction are gone: stop trusting the cache.
      this.partitions.forget();
      throw err;
    }
  }

  /**
   * Re-aggregates where late points landed below the watermark (only this job deletes these rows).
   * The writer records one range per transaction, so a bulk load leaves thousands of them: they are
   * merged per day (the union of their series over the span they touch that day) and each day is
   * re-aggregated once, in a transaction of its own; the ranges are deleted once all are done (a
   * crash in between only repeats work).
   */
  private async processInvalidations(
    client: Queryable,
    watermark: number,
  ): Promise<{ count: number; rows: number; days: number[] }> {
    let count = 0,
      rows = 0;
    const days = new Set<number>();
    for (;;) {
      const r = await client.query<PendingInvalidation & { id: string }>(
        `SELECT id, (extract(epoch FROM from_time) * 1000)::float8 AS f, (extract(epoch FROM to_time) * 1000)::float8 AS t, series_ids AS ids
         FROM rollup_invalidations ORDER BY id LIMIT ${INVALIDATIONS_PER_RUN}`,
      );
      if (r.rows.length === 0) break;
      for (const day of mergeInvalidations(r.rows, watermark)) {
        days.add(floorTo(day.from, DAY));
        rows += await transaction(client, async (tx) => {
          await tx.query('SET LOCAL statement_timeout = 0');
          await this.ensureRollupPartitions(tx, day.from, day.to);
          return this.aggregate(tx, day.from, day.to, watermark, day.seriesIds);
        });
      }
      await client.query(`DELETE FROM rollup_invalidations WHERE id = ANY($1::bigint[])`, [r.rows.map((x) => x.id)]);
      count += r.rows.length;
      if (r.rows.length < INVALIDATIONS_PER_RUN) break;
    }
    return { count, rows, days: [...days] };
  }

  /**
   * VACUUM (ANALYZE) of `rollup_invalidations` whenever ranges were deleted: every query reads it
   * (the rollup state), and after a bulk load its thousands of dead rows made that read a sequential
   * scan of ~90 pages (0.14 of a 0.67 ms statement) until autovacuum, busy with the loaded
   * partitions, came by. After a large refresh (`days` given) also the rollup tables (pages already
   * all-visible are skipped, so it costs what is new) and the points partitions of the days
   * re-aggregated for late points.
   */
  private async vacuum(client: Queryable, days: number[] | undefined): Promise<string[]> {
    const tables: string[] = ['rollup_invalidations'];
    if (days) tables.push(...ROLLUP_TIERS.map((t) => t.table));
    if (days && days.length > 0) {
      const partitions = await this.partitions.list('points', client);
      for (const p of partitions) if (days.some((d) => p.from < d + DAY && p.to > d)) tables.push(p.name);
    }
    // VACUUM runs outside a transaction and may take longer than a query is allowed to.
    await client.query('SET statement_timeout = 0');
    try {
      await client.query(`VACUUM (ANALYZE) ${tables.map((t) => pg.escapeIdentifier(t)).join(', ')}`);
    } finally {
      await client.query('RESET statement_timeout');
    }
    return tables;
  }

  /**
   * Re-aggregates every tier over the buckets touching [from, to), from source rows below `limit`
   * (the watermark): bucket b of tier T is rebuilt from all rows of the tier below inside b.
   */
  private async aggregate(
    tx: Queryable,
    from: number,
    to: number,
    limit: number,
    seriesIds?: number[],
  ): Promise<number> {
    let rows = 0;
    let source = { table: 'points', time: 'time', cols: 'count(*), sum(value), min(value), max(value)' };
    for (const tier of ROLLUP_TIERS) {
      const lo = floorTo(from, tier.ms);
      const hi = Math.min(ceilTo(to, tier.ms), limit);
      const params: unknown[] = [toIso(lo), toIso(hi)];
      if (seriesIds) params.push(seriesIds);
      const r = await tx.query(
        `INSERT INTO ${tier.table} (bucket, series_id, count, sum, min, max)
         SELECT date_bin('${tier.interval}', ${source.time}, timestamptz 'epoch'), series_id, ${source.cols}
         FROM ${source.table}
         WHERE ${source.time} >= $1::timestamptz AND ${source.time} < $2::timestamptz ${seriesIds ? 'AND series_id = ANY($3::int[])' : ''}
         GROUP BY 1, 2
         ON CONFLICT (series_id, bucket) DO UPDATE SET count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max`,
        params,
      );
      rows += r.rowCount ?? 0;
      source = { table: tier.table, time: 'bucket', cols: 'sum(count), sum(sum), min(min), max(max)' };
    }
    return rows;
  }

  private async ensureRollupPartitions(client: Queryable, from: number, to: number): Promise<void> {
    for (const tier of ROLLUP_TIERS)
      await this.partitions.ensure(tier.table, steps(floorTo(from, tier.ms), to, tier.partitionMs), client);
  }
}

/** A range the writer recorded: points of these series from `f` to `t` (inclusive, epoch ms). */
export interface PendingInvalidation {
  f: number;
  t: number;
  ids: number[];
}

/**
 * Late ranges merged per day, each cut at the watermark: for every day touched, the span from the
 * earliest to the latest late point of that day and the union of the series, in time order.
 */
export function mergeInvalidations(
  pending: readonly PendingInvalidation[],
  watermark: number,
): Array<{ from: number; to: number; seriesIds: number[] }> {
  const days = new Map<number, { from: number; to: number; ids: Set<number> }>();
  for (const inv of pending) {
    const upper = Math.min(inv.t + 0.001, watermark); // to_time is the last point's time: inclusive
    for (let day = floorTo(inv.f, DAY); day < upper; day += DAY) {
      const from = Math.max(inv.f, day),
        to = Math.min(upper, day + DAY);
      if (from >= to) continue;
      const d = days.get(day);
      if (!d) days.set(day, { from, to, ids: new Set(inv.ids) });
      else {
        d.from = Math.min(d.from, from);
        d.to = Math.max(d.to, to);
        for (const id of inv.ids) d.ids.add(id);
      }
    }
  }
  return [...days.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, d]) => ({ from: d.from, to: d.to, seriesIds: [...d.ids].sort((a, b) => a - b) }));
}

/** from, from + step, … up to and including the step containing to - 1. */
function* steps(from: number, to: number, step: number): Generator<number> {
  for (let t = floorTo(from, step); t < to; t += step) yield t;
}

export type { RollupTier };
