import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { isDatabaseUnavailable, toApiError } from '../common/error-envelope.js';
import { payloadTooLarge, serviceUnavailable } from '../common/errors.js';
import { RateMeter } from '../common/rate-meter.js';
import { AppConfig } from '../config/config.js';
import { ROLLUP_WATERMARK_LOCK } from '../database/advisory-locks.js';
import { Database } from '../database/database.js';
import { copyBinaryLength, encodeCopyBinary, EncodablePart } from './copy-binary.js';
import { PartitionService } from './partitions.js';
import type { PointBatch } from './point-batch.js';
import { PendingSeries, SeriesResolver, StoredSeries } from './series-resolver.js';

/** Deadlocks between write lanes retried before a write is refused (503, to retry). */
const DEADLOCK_RETRIES = 3;

/** Called after a batch is committed (live streams, alerts). Must not throw or block. */
export type CommitListener = (batch: PointBatch, ids: Int32Array) => void;

/**
 * Figures of the write path, per call and per transaction (never per point), for the self-metrics.
 * `origin` is what produced the points: the ingest protocol (`json`, `json_batch`, `app_v2`, …) or
 * an internal producer (`collector`, `pipeline`, `self`). Must not throw or block.
 */
export interface WriteObserver {
  accepted(points: number, origin: string): void;
  committed(points: number, origin: string): void;
  /** `reason`: queue_full, too_large, shutting_down, series_limit, write_failed, error. */
  rejected(points: number, origin: string, reason: string): void;
  /** One write transaction (a group of requests), its duration in seconds. */
  transaction(seconds: number, points: number, ok: boolean): void;
  /** Points a decoder left out on purpose, the request still stored (`reason`: stale, non_finite, …). */
  skipped?(points: number, origin: string, reason: string): void;
}

interface Pending extends EncodablePart, PendingSeries {
  origin: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The one write path. Every producer calls `write(batch)`; the promise resolves once the points are
 * committed (synchronous_commit, so they survive a crash). Concurrent requests are grouped into
 * one large binary COPY per transaction (group commit: no timers, no added latency), on up to
 * DB_WRITE_CONNECTIONS connections. Same series and timestamp is one point, last write wins: the
 * fast path is a plain COPY; a unique violation (a retried or duplicated batch) reruns the group
 * through a staging table with INSERT … ON CONFLICT DO UPDATE.
 * Memory is bounded: past INGEST_QUEUE_MAX_POINTS in flight, callers get 503 + Retry-After.
 */
@Injectable()
export class PointWriter implements BeforeApplicationShutdown {
  private readonly logger = new Logger('writer');
  private readonly queue: Pending[] = [];
  private readonly listeners = new Set<CommitListener>();
  private readonly lanes: number;
  private reserved = 0;
  /** When each write still waiting for its commit was accepted, oldest first (a Set keeps insertion order). */
  private readonly waitingSince = new Set<{ at: number }>();
  private queued = 0;
  private active = 0;
  private closing = false;
  private idleWaiters: Array<() => void> = [];
  private observers: WriteObserver[] = [];
  private readonly lateListeners = new Set<(points: number) => void>();
  /**
   * COPY buffers free for reuse (at most one per write lane, each sized for INGEST_FLUSH_MAX_POINTS):
   * a new 1-2 MB buffer per transaction stayed in RSS as external memory until a collection.
   */
  private readonly copyBuffers: Buffer[] = [];

  readonly meter = new RateMeter(10);
  readonly stats = {
    transactions: 0,
    requests: 0,
    upserts: 0,
    failures: 0,
    lastError: null as string | null,
    lastCommitAt: null as string | null,
  };

  constructor(
    private readonly database: Database,
    private readonly config: AppConfig,
    private readonly resolver: SeriesResolver,
    private readonly partitions: PartitionService,
  ) {
    this.lanes = database.info.pglite ? 1 : config.db.writeConnections;
  }

  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Called after each commit that stored points below the rollup watermark, with how many: the
   * rollup refresh uses it to re-aggregate soon after a bulk load or backfill.
   */
  onLatePoints(listener: (points: number) => void): () => void {
    this.lateListeners.add(listener);
    return () => this.lateListeners.delete(listener);
  }

  /** Registers an observer of accepted, committed and rejected points and of transaction latency. */
  observe(observer: WriteObserver): () => void {
    this.observers = [...this.observers, observer];
    return () => (this.observers = this.observers.filter((o) => o !== observer));
  }

  /** Points accepted and not yet committed or refused. */
  get pendingPoints(): number {
    return this.reserved;
  }

  /** How long the oldest write still waiting for its commit (or refusal) has waited, in ms; 0 when none. */
  oldestPendingMs(now = performance.now()): number {
    const first = this.waitingSince.values().next();
    return first.done ? 0 : now - first.value.at;
  }

  get queuedPoints(): number {
    return this.queued;
  }

  get capacity(): number {
    return this.config.ingest.queueMaxPoints;
  }

  /** Stores `batch`; resolves once committed. `origin` names the producer in the self-metrics. */
  async write(batch: PointBatch, origin = 'other'): Promise<void> {
    if (batch.length === 0) return;
    if (this.closing) {
      this.noteRejected(batch.length, origin, 'shutting_down');
      throw serviceUnavailable('Timescope is shutting down; retry against another instance or later', 5);
    }
    if (batch.length > this.config.ingest.queueMaxPoints) {
      this.noteRejected(batch.length, origin, 'too_large');
      // It would never fit: a 503 would have the client retry for ever.
      throw payloadTooLarge(
        `Too many points in one write: ${batch.length} > ${this.config.ingest.queueMaxPoints} (INGEST_QUEUE_MAX_POINTS); split the request`,
        {
          points: batch.length,
          limit: 'INGEST_QUEUE_MAX_POINTS',
          max: this.config.ingest.queueMaxPoints,
        },
      );
    }
    if (this.reserved + batch.length > this.config.ingest.queueMaxPoints) {
      this.noteRejected(batch.length, origin, 'queue_full');
      throw serviceUnavailable('Ingest buffer is full; retry shortly', 1, {
        pending_points: this.reserved,
        limit: 'INGEST_QUEUE_MAX_POINTS',
        max: this.config.ingest.queueMaxPoints,
      });
    }
    this.reserved += batch.length;
    for (const o of this.observers) o.accepted(batch.length, origin);
    const waiting = { at: performance.now() };
    this.waitingSince.add(waiting);
    let resolved: Awaited<ReturnType<SeriesResolver['resolve']>> | undefined;
    try {
      try {
        resolved = await this.resolver.resolve(batch);
      } catch (err) {
        this.noteRejected(
          batch.length,
          origin,
          (err as { code?: unknown }).code === 'UNPROCESSABLE_ENTITY' ? 'series_limit' : 'write_failed',
        );
        throw err;
      }
      const { ids, changes } = resolved;
      await new Promise<void>((resolve, reject) => {
        this.queue.push({ batch, ids, changes, origin, resolve, reject });
        this.queued += batch.length;
        this.pump();
      });
    } finally {
      this.resolver.release(resolved?.changes ?? null);
      this.waitingSince.delete(waiting);
      this.reserved -= batch.length;
      if (this.reserved === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Points a protocol decoder left out without failing the request (remote write's staleness
   * markers, NaN samples, OTLP points reported in partial_success), for the self-metrics.
   */
  noteSkipped(points: number, origin: string, reason: string): void {
    if (points > 0) for (const o of this.observers) o.skipped?.(points, origin, reason);
  }

  private noteRejected(points: number, origin: string, reason: string): void {
    for (const o of this.observers) o.rejected(points, origin, reason);
  }

  /** Resolves when every accepted point is committed or refused (also those still being resolved). */
  idle(): Promise<void> {
    if (this.reserved === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    if (this.reserved > 0) this.logger.log(`flushing ${this.reserved} pending point(s) before shutdown`);
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, 30_000).unref())]);
  }

  private pump(): void {
    while (this.active < this.lanes && this.queue.length > 0) {
      const group: Pending[] = [];
      let n = 0;
      while (
        this.queue.length > 0 &&
        (group.length === 0 || n + this.queue[0].batch.length <= this.config.ingest.flushMaxPoints)
      ) {
        const p = this.queue.shift()!;
        group.push(p);
        n += p.batch.length;
      }
      this.queued -= n;
      this.active++;
      void this.flush(group, n).finally(() => {
        this.active--;
        if (this.queue.length > 0) this.pump();
      });
    }
  }

  private async flush(group: Pending[], points: number): Promise<void> {
    const t0 = performance.now();
    let late: number, series: StoredSeries | null;
    try {
      ({ late, series } = await this.persist(group));
    } catch (err) {
      this.stats.failures++;
      this.stats.lastError = (err as Error)?.message ?? String(err);
      const code = (err as { code?: string })?.code;
      if (group.length > 1 && !isDatabaseUnavailable(err) && code !== '57014' && code !== '40P01') {
        // Not the database's trouble but, it may be, one request's: each request of the group once
        // more in a transaction of its own, so that the others are not refused with it.
        for (const o of this.observers) o.transaction((performance.now() - t0) / 1000, points, false);
        for (const p of group) await this.flush([p], p.batch.length);
        return;
      }
      // A write past the statement timeout (a locked table, a busy server) is the database's trouble,
      // not the request's: 503 with Retry-After, as when it is down, not the query API's 504 advice.
      const apiError =
        code === '57014'
          ? serviceUnavailable('The database did not take the write in time (statement timeout); retry later', 5)
          : code === '40P01' || code === '40001'
            ? serviceUnavailable('The write met concurrent writes of the same series (deadlock); retry', 1)
            : toApiError(err);
      if (apiError.getStatus() >= 500) this.logger.warn(`write of ${points} point(s) failed: ${this.stats.lastError}`);
      for (const o of this.observers) {
        o.transaction((performance.now() - t0) / 1000, points, false);
        for (const p of group) o.rejected(p.batch.length, p.origin, 'write_failed');
      }
      for (const p of group) p.reject(apiError);
      return;
    }
    if (series) this.resolver.committed(series);
    this.stats.transactions++;
    this.stats.requests += group.length;
    this.stats.lastCommitAt = new Date().toISOString();
    this.meter.add(points);
    for (const o of this.observers) {
      o.transaction((performance.now() - t0) / 1000, points, true);
      for (const p of group) o.committed(p.batch.length, p.origin);
    }
    for (const p of group) p.resolve();
    if (late > 0) for (const l of this.lateListeners) l(late);
    for (const p of group) {
      this.emit(p);
      this.resolver.noteSeen(p.batch, p.ids);
    }
  }

  private emit(p: Pending): void {
    for (const l of this.listeners) {
      try {
        l(p.batch, p.ids);
      } catch (err) {
        this.logger.warn(`commit listener failed: ${(err as Error).message}`);
      }
    }
  }

  /** Returns how many of the points lay below the rollup watermark, and the series it created or changed. */
  private async persist(group: Pending[]): Promise<{ late: number; series: StoredSeries | null }> {
    let min = Infinity;
    for (const { batch } of group) if (batch.minTime < min) min = batch.minTime;
    const ensurePartitions = async () => {
      if (!this.partitions.enabled) return;
      const days = new Set<number>();
      for (const { batch } of group)
        for (const d of PartitionService.daysOf(batch.times, batch.length, batch.minTime, batch.maxTime)) days.add(d);
      await this.partitions.ensure('points', days);
    };
    await ensurePartitions();
    return this.database.withWriteClient(async (client) => {
      // Each remedy at most once, in whichever order the errors come (a missing partition, then a
      // duplicate); a deadlock up to DEADLOCK_RETRIES times.
      let upsert = false,
        reloaded = false,
        deadlocks = 0;
      for (;;) {
        try {
          return await this.writeOnce(client, group, min, upsert);
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === '23505' && !upsert) {
            // A point that is already stored (a retry, or the same series and time twice in this group).
            this.stats.upserts++;
            upsert = true;
          } else if (code === '40P01' && deadlocks < DEADLOCK_RETRIES) {
            // Two lanes creating or changing the same series rows in different orders (new series
            // lock in key order, unit changes in id order): the server aborted this one; again.
            deadlocks++;
          } else if (code === '23514' && this.partitions.enabled && !reloaded) {
            // No partition for a row: one was dropped or made elsewhere since we last looked.
            reloaded = true;
            this.partitions.forget();
            await this.partitions.load();
            await ensurePartitions();
          } else throw err;
        }
      }
    });
  }

  private async writeOnce(
    client: pg.PoolClient,
    group: Pending[],
    min: number,
    upsert: boolean,
  ): Promise<{ late: number; series: StoredSeries | null }> {
    try {
      // Both flavours: below the watermark (where the last rollup refresh reached) points are late.
      // Separate statements: the watermark must be read with a snapshot taken after the lock is granted.
      const res = (await client.query(
        `BEGIN; SELECT pg_advisory_xact_lock_shared(${ROLLUP_WATERMARK_LOCK});
         SELECT (extract(epoch FROM watermark) * 1000)::float8 AS w FROM rollup_state WHERE id = 1`,
      )) as unknown as pg.QueryResult<{ w: number | null }>[];
      const watermark = res[2].rows[0]?.w ?? null;
      // New series are created in the points' transaction: a write that fails leaves none behind.
      const series = await this.resolver.store(client, group);
      if (this.database.info.writeMethod !== 'copy') await this.insertUnnest(client, group);
      else if (upsert) await this.copyUpsert(client, group);
      else await this.copy(client, 'points', group);
      const late = watermark !== null && min < watermark ? await this.invalidateRollups(client, group, watermark) : 0;
      await client.query('COMMIT');
      return { late, series };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  private copy(client: pg.PoolClient, table: string, group: Pending[]): Promise<void> {
    let points = 0;
    for (const p of group) points += p.batch.length;
    const size = copyBinaryLength(this.config.ingest.flushMaxPoints);
    // A group larger than a flush (one request above INGEST_FLUSH_MAX_POINTS) gets a buffer of its own.
    const pooled =
      copyBinaryLength(points) <= size ? (this.copyBuffers.pop() ?? Buffer.allocUnsafeSlow(size)) : undefined;
    const buf = encodeCopyBinary(group, pooled, true);
    return new Promise((resolve, reject) => {
      const stream = client.query(copyFrom(`COPY ${table} (time, series_id, value) FROM STDIN (FORMAT binary)`));
      stream.on('error', reject); // the buffer may still be queued on the socket: not reused
      stream.on('finish', () => {
        // 'finish' comes after the server's ReadyForQuery: every byte was read, the buffer is free.
        if (pooled && this.copyBuffers.length < this.lanes) this.copyBuffers.push(pooled);
        resolve();
      });
      stream.end(buf);
    });
  }

  /** Last write wins, also between duplicates inside the group (the later row in COPY order). */
  private async copyUpsert(client: pg.PoolClient, group: Pending[]): Promise<void> {
    await client.query(
      `CREATE TEMP TABLE IF NOT EXISTS points_staging (time timestamptz NOT NULL, series_id integer NOT NULL, value double precision NOT NULL);
       TRUNCATE points_staging`,
    );
    await this.copy(client, 'points_staging', group);
    await client.query(
      `INSERT INTO points (time, series_id, value)
       SELECT DISTINCT ON (series_id, time) time, series_id, value FROM points_staging ORDER BY series_id, time, ctid DESC
       ON CONFLICT (series_id, time) DO UPDATE SET value = EXCLUDED.value`,
    );
  }

  /** For servers without COPY FROM STDIN (PGlite): one parameterised INSERT from arrays. */
  private async insertUnnest(client: pg.PoolClient, group: Pending[]): Promise<void> {
    const times: number[] = [],
      ids: number[] = [],
      values: Array<number | string> = [];
    for (const { batch, ids: seriesIds } of group) {
      for (let i = 0; i < batch.length; i++) {
        times.push(batch.times[i]);
        ids.push(seriesIds[batch.seriesIndex[i]]);
        const v = batch.values[i];
        values.push(Object.is(v, -0) ? '-0' : v); // String(-0) is "0": keep the sign through the array literal
      }
    }
    await client.query(
      `INSERT INTO points (time, series_id, value)
       SELECT DISTINCT ON (s, t) to_timestamp(t / 1000), s, v
       FROM unnest($1::float8[], $2::int4[], $3::float8[]) WITH ORDINALITY AS u(t, s, v, n)
       ORDER BY s, t, n DESC
       ON CONFLICT (series_id, time) DO UPDATE SET value = EXCLUDED.value`,
      [times, ids, values],
    );
  }

  /** Points below the rollup watermark: tell the refresh job to re-aggregate those series there. */
  private async invalidateRollups(client: pg.PoolClient, group: Pending[], watermark: number): Promise<number> {
    const series = new Set<number>();
    let from = Infinity,
      to = -Infinity,
      late = 0;
    for (const { batch, ids } of group) {
      if (batch.minTime < watermark) late += batch.length;
      for (let i = 0; i < batch.series.length; i++) {
        if (batch.seriesMinTime[i] < watermark) {
          series.add(ids[i]);
          if (batch.seriesMinTime[i] < from) from = batch.seriesMinTime[i];
          if (batch.seriesMaxTime[i] > to) to = batch.seriesMaxTime[i];
        }
      }
    }
    await client.query(
      `INSERT INTO rollup_invalidations (from_time, to_time, series_ids) VALUES (to_timestamp($1::float8 / 1000), to_timestamp($2::float8 / 1000), $3::int[])`,
      [from, to, [...series]],
    );
    return late;
  }
}
