import type { ColumnType, Generated } from 'kysely';

/** Kysely's view of the tables. Migrations under `db/migrations` are the source of truth. */

type Timestamp = ColumnType<Date, Date | string, Date | string>;

export interface SeriesTable {
  id: Generated<number>;
  metric: string;
  source: string;
  tags: ColumnType<Record<string, string>, string, string>;
  tags_key: string;
  unit: string | null;
  first_seen: Timestamp | null;
  last_seen: Timestamp | null;
  created_at: Generated<Date>;
}

export interface PointsTable {
  time: Timestamp;
  series_id: number;
  value: number;
}

export interface RollupTable {
  bucket: Timestamp;
  series_id: number;
  count: number;
  sum: number;
  min: number;
  max: number;
}

export interface RollupStateTable {
  id: number;
  watermark: Timestamp | null;
  refreshed_at: Timestamp | null;
}

export interface RollupInvalidationsTable {
  id: Generated<string>;
  from_time: Timestamp;
  to_time: Timestamp;
  series_ids: number[];
  created_at: Generated<Date>;
}

export interface TimescopeMetaTable {
  key: string;
  value: string;
}

export interface JobRunsTable {
  id: Generated<string>;
  job: string;
  started_at: Timestamp;
  finished_at: Timestamp | null;
  duration_ms: number | null;
  outcome: string;
  details: ColumnType<Record<string, unknown>, string, string>;
  instance: string;
}

export interface DB {
  series: SeriesTable;
  points: PointsTable;
  rollup_1m: RollupTable;
  rollup_5m: RollupTable;
  rollup_1h: RollupTable;
  rollup_1d: RollupTable;
  rollup_state: RollupStateTable;
  rollup_invalidations: RollupInvalidationsTable;
  timescope_meta: TimescopeMetaTable;
  job_runs: JobRunsTable;
}
