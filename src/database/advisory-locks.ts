/**
 * Every PostgreSQL advisory lock Timescope takes, in one place: what each guards, who takes it and
 * how. A new lock gets its key here (the unit test checks that keys are distinct), never a number
 * where it is used.
 *
 * PostgreSQL keeps two key spaces apart: a lock on one bigint key (`pg_advisory_lock(k)`) never
 * conflicts with one on two int4 keys (`pg_advisory_lock(ns, k)`). Single locks use a bigint key;
 * families of locks (one per job, one per pipeline) use a namespace as the first of two keys.
 * Session-level locks are held until unlocked or until their connection ends (so a crashed holder
 * releases them); transaction-level locks until COMMIT or ROLLBACK. PGlite serves one session, so
 * session-level locks there exclude nothing between holders of that one session.
 */

/**
 * Migrations and the idempotent schema: one instance applies them at a time.
 * Session-level, exclusive, waited for (`pg_advisory_lock`), on the connection that applies them:
 * `migrate()` at start (DatabaseModule) and `make migrate` (src/cli/migrate.ts).
 */
export const MIGRATION_LOCK = 7_310_001;

/**
 * The plain-PostgreSQL rollup watermark (`rollup_state.watermark`): a point write either commits
 * before the watermark moves, or sees the new watermark and records its late points in
 * `rollup_invalidations`. Transaction-level: the point writer takes it shared in every write
 * transaction (`pg_advisory_xact_lock_shared`); the rollup refresh takes it exclusively
 * (`pg_advisory_xact_lock`) in each transaction that advances the watermark. Unused on TimescaleDB.
 */
export const ROLLUP_WATERMARK_LOCK = 7_310_002;

/**
 * Scheduled jobs (first key; the second is `jobLockKey(name)`): one instance runs a job at a time.
 * Session-level, exclusive: JobsService tries it (`pg_try_advisory_lock`) on its own dedicated
 * connection before each run, and an instance that does not get it records the run as skipped.
 * Retention also waits for the `rollup-refresh` job's lock (`pg_advisory_lock`, on the retention
 * job's connection) for its whole pass, so a refresh never re-materialises a continuous aggregate
 * over chunks being dropped.
 */
export const JOB_LOCK_NAMESPACE = 7310;

/**
 * Saved pipelines (first key; the second is `pipelineLockKey(id)`): one run of a pipeline at a time,
 * scheduled or manual, across instances. Session-level, exclusive, on PipelineLocks' dedicated
 * connection: the scheduler tries it (`pg_try_advisory_lock`), a manual run retries for up to 10 s.
 * Not taken on PGlite (one session): an in-process set stands in.
 */
export const PIPELINE_LOCK_NAMESPACE = 7306;

/** 32-bit FNV-1a of a job's name: the second key of its advisory lock. */
export function jobLockKey(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** The second key of a pipeline's lock: its id (a bigint) brought into int4. */
export const pipelineLockKey = (id: number): number => id % 2_147_483_647;

export interface AdvisoryLockEntry {
  name: string;
  /** `single`: one bigint key; `namespace`: the first of two int4 keys. */
  space: 'single' | 'namespace';
  key: number;
}

/** The registry as data, for the test that keys are distinct (and for anyone listing pg_locks). */
export const ADVISORY_LOCKS: readonly AdvisoryLockEntry[] = [
  { name: 'migrations', space: 'single', key: MIGRATION_LOCK },
  { name: 'rollup watermark', space: 'single', key: ROLLUP_WATERMARK_LOCK },
  { name: 'jobs', space: 'namespace', key: JOB_LOCK_NAMESPACE },
  { name: 'pipelines', space: 'namespace', key: PIPELINE_LOCK_NAMESPACE },
];
