import { Injectable, Logger } from '@nestjs/common';
import { floorTo } from '../common/time.js';
import { Database, Queryable } from '../database/database.js';
import { POINTS_PARTITION_MS, ROLLUP_TIERS } from './tiers.js';

export interface Partition {
  name: string;
  from: number;
  to: number;
}

/** Partitioned tables on plain PostgreSQL and the width of their partitions. */
export const PARTITIONED: ReadonlyArray<{ table: string; widthMs: number }> = [
  { table: 'points', widthMs: POINTS_PARTITION_MS },
  ...ROLLUP_TIERS.map((t) => ({ table: t.table, widthMs: t.partitionMs })),
];

const PG_TS = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?:([+-]\d{2})(?::?(\d{2}))?)?$/;

/** A timestamptz as PostgreSQL prints it (`2026-11-22 00:00:00+00`) → epoch ms. */
export function parsePgTimestamp(text: string): number {
  const m = PG_TS.exec(text.trim());
  if (!m) return NaN;
  return Date.parse(`${m[1]}T${m[2]}${m[3] ? `${m[3]}:${m[4] ?? '00'}` : 'Z'}`);
}

/** `FOR VALUES FROM ('…') TO ('…')` → [from, to) in epoch ms. */
export function parsePartitionBound(bound: string): { from: number; to: number } | undefined {
  const m = /FROM \('([^']+)'\) TO \('([^']+)'\)/.exec(bound);
  if (!m) return undefined;
  return { from: parsePgTimestamp(m[1]), to: parsePgTimestamp(m[2]) };
}

/**
 * Native range partitions on plain PostgreSQL: remembers which exist, makes missing ones on demand
 * (the writer, before a batch with backfilled days) and ahead of time (the partition job).
 */
@Injectable()
export class PartitionService {
  private readonly logger = new Logger('partitions');
  private readonly known = new Map<string, Set<number>>();
  private readonly tables: Array<{ table: string; widthMs: number }> = [...PARTITIONED];

  constructor(private readonly database: Database) {}

  /** Adds a table range-partitioned by time (e.g. events) to on-demand and ahead-of-time partitioning. */
  register(table: string, widthMs: number): void {
    if (!this.tables.some((t) => t.table === table)) this.tables.push({ table, widthMs });
  }

  /** Points, rollups and the registered tables. */
  get partitioned(): ReadonlyArray<{ table: string; widthMs: number }> {
    return this.tables;
  }

  get enabled(): boolean {
    return this.database.info.flavour === 'postgresql';
  }

  async list(table: string, client?: Queryable): Promise<Partition[]> {
    const q = client ?? this.database.writePool;
    const r = await q.query<{ name: string; bound: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = $1::regclass`,
      [table],
    );
    const out: Partition[] = [];
    for (const row of r.rows) {
      const b = parsePartitionBound(row.bound);
      if (b) out.push({ name: row.name, ...b });
    }
    return out.sort((a, b) => a.from - b.from);
  }

  /** Reloads the set of existing partitions from the catalogue. */
  async load(): Promise<void> {
    if (!this.enabled) return;
    for (const { table } of this.tables) {
      this.known.set(table, new Set((await this.list(table)).map((p) => p.from)));
    }
  }

  forget(): void {
    this.known.clear();
  }

  /** Makes sure the partitions of `table` holding each of `times` exist. Returns how many were made. */
  async ensure(table: string, times: Iterable<number>, client?: Queryable): Promise<number> {
    if (!this.enabled) return 0;
    const width = this.tables.find((p) => p.table === table)?.widthMs;
    if (!width) throw new Error(`${table} is not partitioned`);
    let set = this.known.get(table);
    if (!set) this.known.set(table, (set = new Set()));
    const missing = new Set<number>();
    for (const t of times) {
      const lo = floorTo(t, width);
      if (!set.has(lo)) missing.add(lo);
    }
    const q = client ?? this.database.writePool;
    for (const lo of missing) {
      await q.query(`SELECT timescope_ensure_partition($1::regclass, $2::interval, $3::timestamptz)`, [
        table,
        `${width / 1000} seconds`,
        new Date(lo).toISOString(),
      ]);
      set.add(lo);
    }
    if (missing.size > 0) this.logger.debug(`${table}: made ${missing.size} partition(s)`);
    return missing.size;
  }

  /** Days (partition lower bounds) touched by points in [min, max]; walks the points only when they span days. */
  static daysOf(times: Float64Array, length: number, min: number, max: number): number[] {
    const first = floorTo(min, POINTS_PARTITION_MS),
      last = floorTo(max, POINTS_PARTITION_MS);
    if (first === last) return [first];
    const days = new Set<number>();
    for (let i = 0; i < length; i++) days.add(floorTo(times[i], POINTS_PARTITION_MS));
    return [...days];
  }
}
