import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { ApiError } from '../common/errors.js';
import type { PointBatch, SeriesRef } from './point-batch.js';
import { CachedSeries, SeriesCache } from './series-cache.js';
import { SeriesRepository, SeriesRow } from './series.repository.js';

const SEEN_FLUSH_MS = 30_000; // first_seen/last_seen in the database lag at most this much

/**
 * Turns the series of a batch into ids: from the bounded cache, else one round trip to find or
 * create the missing ones. Enforces the series cardinality limit (MAX_SERIES).
 */
@Injectable()
export class SeriesResolver implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('series');
  readonly cache: SeriesCache;
  private knownSeries = 0;
  private readonly dirtySeen = new Map<number, CachedSeries>();
  private flushing = false;
  private seenTimer?: NodeJS.Timeout;

  constructor(
    private readonly repo: SeriesRepository,
    private readonly config: AppConfig,
  ) {
    this.cache = new SeriesCache(config.series.cacheSize);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.knownSeries = await this.repo.count().catch(() => 0);
    this.seenTimer = setInterval(() => void this.flushSeen(), SEEN_FLUSH_MS);
    this.seenTimer.unref();
  }

  get seriesCount(): number {
    return this.knownSeries;
  }

  async resolve(batch: PointBatch): Promise<Int32Array> {
    const refs = batch.series;
    const ids = new Int32Array(refs.length);
    let missing: number[] | undefined;
    let unitIds: number[] | undefined, units: string[] | undefined;
    for (let i = 0; i < refs.length; i++) {
      const ref = refs[i];
      const hit = this.cache.get(ref.key);
      if (hit === undefined) (missing ??= []).push(i);
      else {
        ids[i] = hit.id;
        if (ref.unit !== null && ref.unit !== hit.unit) {
          (unitIds ??= []).push(hit.id);
          (units ??= []).push(ref.unit);
          hit.unit = ref.unit;
        }
      }
    }
    if (missing) await this.resolveMissing(batch, missing, ids);
    if (unitIds) await this.repo.updateUnits(unitIds, units!);
    return ids;
  }

  /** Widens the in-memory first/last seen of the batch's series; the database follows on the next flush. */
  noteSeen(batch: PointBatch, ids: Int32Array): void {
    for (let i = 0; i < batch.series.length; i++) {
      const e = this.cache.peek(batch.series[i].key); // not a lookup: the hit rate counts resolve() only
      if (!e) continue;
      const f = batch.seriesMinTime[i],
        l = batch.seriesMaxTime[i];
      if (f < e.firstSeen || l > e.lastSeen) {
        e.firstSeen = Math.min(f, e.firstSeen);
        e.lastSeen = Math.max(l, e.lastSeen);
        this.dirtySeen.set(ids[i], e);
      }
    }
  }

  /**
   * Writes first_seen/last_seen of the series that moved since the last flush, in one statement:
   * every SEEN_FLUSH_MS and at shutdown, never on the write path (a backfill would otherwise
   * update every series after every batch).
   */
  async flushSeen(): Promise<number> {
    if (this.dirtySeen.size === 0 || this.flushing) return 0;
    const entries = [...this.dirtySeen];
    this.dirtySeen.clear();
    this.flushing = true;
    try {
      await this.repo.updateSeen(
        entries.map(([id]) => id),
        entries.map(([, e]) => e.firstSeen),
        entries.map(([, e]) => e.lastSeen),
      );
      return entries.length;
    } catch (err) {
      for (const [id, e] of entries) if (!this.dirtySeen.has(id)) this.dirtySeen.set(id, e);
      this.logger.debug(`first/last seen not written: ${(err as Error).message}`);
      return 0;
    } finally {
      this.flushing = false;
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.seenTimer);
    await this.flushSeen();
  }

  private async resolveMissing(batch: PointBatch, missing: number[], ids: Int32Array): Promise<void> {
    const refs = missing.map((i) => batch.series[i]);
    const found = new Map<string, SeriesRow>();
    for (const row of await this.repo.find(refs)) found.set(rowKey(row), row);
    // One row per key: a batch may hold the same series twice (tags sent in different orders).
    const toCreate: number[] = [];
    const creating = new Set<string>();
    for (const i of missing) {
      const key = batch.series[i].key;
      if (!found.has(key) && !creating.has(key)) {
        creating.add(key);
        toCreate.push(i);
      }
    }
    if (toCreate.length > 0) {
      if (this.knownSeries + toCreate.length > this.config.series.maxSeries) {
        throw new ApiError(
          422,
          'UNPROCESSABLE_ENTITY',
          `series limit reached: this request would create ${toCreate.length} new series beyond MAX_SERIES=${this.config.series.maxSeries}`,
          {
            limit: 'MAX_SERIES',
            max_series: this.config.series.maxSeries,
            new_series: toCreate.length,
          },
        );
      }
      const created = await this.repo.insert(
        toCreate.map((i) => batch.series[i]),
        toCreate.map((i) => batch.seriesMinTime[i]),
        toCreate.map((i) => batch.seriesMaxTime[i]),
      );
      for (const row of created) {
        found.set(rowKey(row), row);
        if (row.inserted) this.knownSeries++;
      }
      this.logger.debug(`created ${created.filter((r) => r.inserted).length} series`);
    }
    const unitIds: number[] = [],
      units: string[] = [];
    for (const i of missing) {
      const ref: SeriesRef = batch.series[i];
      const row = found.get(ref.key);
      if (!row) throw new Error(`series ${ref.metric} was neither found nor created`);
      ids[i] = row.id;
      if (ref.unit !== null && ref.unit !== row.unit) {
        unitIds.push(row.id);
        units.push(ref.unit);
      }
      this.cache.set(ref.key, {
        id: row.id,
        unit: ref.unit ?? row.unit,
        firstSeen: row.first_seen_ms ?? batch.seriesMinTime[i],
        lastSeen: row.last_seen_ms ?? batch.seriesMaxTime[i],
      });
    }
    if (unitIds.length > 0) await this.repo.updateUnits(unitIds, units);
  }
}

const rowKey = (r: SeriesRow) => `${r.metric}\u0000${r.source}\u0000${r.tags_key}`;
