import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { ApiError } from '../common/errors.js';
import type { PointBatch, SeriesRef } from './point-batch.js';
import { CachedSeries, SeriesCache } from './series-cache.js';
import { Queryable, SeriesRepository, SeriesRow } from './series.repository.js';

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
  /** New series of writes on their way to a commit: MAX_SERIES counts them before they are stored. */
  private pendingNew = 0;
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

  /**
   * The ids of the batch's series that are stored already (from the cache, else one round trip),
   * and what the write transaction still has to do for the batch: create the series that are new,
   * change the units it gives. Nothing is written here, so a request that fails later leaves no
   * series behind (`store` runs inside the points' transaction). Refuses past MAX_SERIES.
   */
  async resolve(batch: PointBatch): Promise<{ ids: Int32Array; changes: SeriesChanges | null }> {
    const refs = batch.series;
    const ids = new Int32Array(refs.length);
    let missing: number[] | undefined;
    let changes: SeriesChanges | null = null;
    for (let i = 0; i < refs.length; i++) {
      const ref = refs[i];
      const hit = this.cache.get(ref.key);
      if (hit === undefined) (missing ??= []).push(i);
      else {
        ids[i] = hit.id;
        if (ref.unit !== null && ref.unit !== hit.unit)
          (changes ??= noChanges()).units.set(ref.key, { id: hit.id, unit: ref.unit });
      }
    }
    if (missing) changes = await this.findMissing(batch, missing, ids, changes);
    return { ids, changes };
  }

  /**
   * Inside the write transaction of `parts` (one group commit): creates their new series, in key
   * order (two transactions creating the same series wait for each other rather than deadlock),
   * fills in their ids, and changes the units they give. The result goes to `committed` after
   * COMMIT; after a rollback it is dropped, and a rerun of the transaction calls this again.
   */
  async store(client: Queryable, parts: readonly PendingSeries[]): Promise<StoredSeries | null> {
    const create = new Map<string, { ref: SeriesRef; first: number; last: number }>();
    const units = new Map<string, { id: number; unit: string }>();
    for (const { batch, changes } of parts) {
      if (!changes) continue;
      for (const i of changes.create) {
        const ref = batch.series[i];
        const e = create.get(ref.key);
        if (!e) create.set(ref.key, { ref, first: batch.seriesMinTime[i], last: batch.seriesMaxTime[i] });
        else {
          e.first = Math.min(e.first, batch.seriesMinTime[i]);
          e.last = Math.max(e.last, batch.seriesMaxTime[i]);
          if (ref.unit !== null) e.ref = ref; // the last unit given wins, as for stored series
        }
      }
      for (const [key, change] of changes.units) units.set(key, change);
    }
    if (create.size === 0 && units.size === 0) return null;
    const rows = new Map<string, SeriesRow & { inserted: boolean }>();
    if (create.size > 0) {
      const entries = [...create.values()].sort((a, b) => (a.ref.key < b.ref.key ? -1 : a.ref.key > b.ref.key ? 1 : 0));
      const created = await this.repo.insert(
        client,
        entries.map((e) => e.ref),
        entries.map((e) => e.first),
        entries.map((e) => e.last),
      );
      for (const row of created) rows.set(rowKey(row), row);
      for (const { batch, changes, ids } of parts) {
        if (!changes) continue;
        for (const i of changes.create) {
          const row = rows.get(batch.series[i].key);
          if (!row) throw new Error(`series ${batch.series[i].metric} was neither found nor created`);
          ids[i] = row.id;
        }
      }
    }
    if (units.size > 0) {
      const changed = [...units.values()].sort((a, b) => a.id - b.id); // row locks in one order
      await this.repo.updateUnits(
        client,
        changed.map((u) => u.id),
        changed.map((u) => u.unit),
      );
    }
    return { rows, units };
  }

  /** After COMMIT: the new series and units `store` wrote are now the database's, so the cache learns them. */
  committed(stored: StoredSeries): void {
    for (const [key, row] of stored.rows) {
      if (row.inserted) this.knownSeries++;
      this.cache.set(key, {
        id: row.id,
        unit: row.unit,
        firstSeen: row.first_seen_ms ?? Infinity,
        lastSeen: row.last_seen_ms ?? -Infinity,
      });
    }
    for (const [key, { unit }] of stored.units) {
      const e = this.cache.peek(key);
      if (e) e.unit = unit;
    }
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

  /** Looks up the series the cache did not know; those not stored yet become `changes.create`. */
  private async findMissing(
    batch: PointBatch,
    missing: number[],
    ids: Int32Array,
    changes: SeriesChanges | null,
  ): Promise<SeriesChanges | null> {
    const found = new Map<string, SeriesRow>();
    for (const row of await this.repo.find(missing.map((i) => batch.series[i]))) found.set(rowKey(row), row);
    const creating = new Set<string>();
    for (const i of missing) {
      const ref: SeriesRef = batch.series[i];
      const row = found.get(ref.key);
      if (!row) {
        (changes ??= noChanges()).create.push(i);
        creating.add(ref.key); // a batch may hold the same series twice (tags sent in different orders)
        continue;
      }
      ids[i] = row.id;
      if (ref.unit !== null && ref.unit !== row.unit)
        (changes ??= noChanges()).units.set(ref.key, { id: row.id, unit: ref.unit });
      this.cache.set(ref.key, {
        id: row.id,
        unit: row.unit,
        firstSeen: row.first_seen_ms ?? batch.seriesMinTime[i],
        lastSeen: row.last_seen_ms ?? batch.seriesMaxTime[i],
      });
    }
    if (creating.size === 0) return changes;
    if (this.knownSeries + this.pendingNew + creating.size > this.config.series.maxSeries) {
      throw new ApiError(
        422,
        'UNPROCESSABLE_ENTITY',
        `series limit reached: this request would create ${creating.size} new series beyond MAX_SERIES=${this.config.series.maxSeries}`,
        { limit: 'MAX_SERIES', max_series: this.config.series.maxSeries, new_series: creating.size },
      );
    }
    this.pendingNew += creating.size;
    changes!.reserved = creating.size;
    return changes;
  }

  /** A write's reservation of new series (SeriesChanges.reserved) ends: committed (counted by then) or failed. */
  release(changes: SeriesChanges | null): void {
    if (changes?.reserved) this.pendingNew -= changes.reserved;
  }
}

/** What a batch's series still need from its write transaction (see `SeriesResolver.resolve`). */
export interface SeriesChanges {
  /** Indices into `batch.series` of series not stored yet. */
  create: number[];
  /** Stored series whose unit the batch changes, by series key. */
  units: Map<string, { id: number; unit: string }>;
  /** New series counted against MAX_SERIES until the write commits or fails (see release). */
  reserved?: number;
}

/** A batch on its way into a write transaction, with the ids `store` completes. */
export interface PendingSeries {
  batch: PointBatch;
  ids: Int32Array;
  changes: SeriesChanges | null;
}

/** What `store` wrote, for `committed`: rows by series key, and units changed by series key. */
export interface StoredSeries {
  rows: Map<string, SeriesRow & { inserted: boolean }>;
  units: Map<string, { id: number; unit: string }>;
}

const noChanges = (): SeriesChanges => ({ create: [], units: new Map() });

const rowKey = (r: SeriesRow) => `${r.metric}\u0000${r.source}\u0000${r.tags_key}`;
