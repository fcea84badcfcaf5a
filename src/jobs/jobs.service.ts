import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { hostname } from 'node:os';
import type pg from 'pg';
import { JOB_LOCK_NAMESPACE, jobLockKey } from '../database/advisory-locks.js';
import { Database, Queryable } from '../database/database.js';
import { SessionConnection } from '../database/session-connection.js';
import { notFound } from '../common/errors.js';
import { formatDuration } from '../common/time.js';
import { AppConfig } from '../config/config.js';

export interface JobContext {
  /**
   * One connection of the general pool for the whole run, taken on first use (for work that needs
   * one session: transactions, SET LOCAL, CALL). A job may use the pools instead, but not both at
   * once: on PGlite the pool has a single connection.
   */
  client: Queryable;
  logger: Logger;
}

export interface JobSpec {
  name: string;
  description: string;
  /** Milliseconds between the end of one run and the start of the next; read anew each time. */
  every: () => number;
  enabled?: () => boolean;
  /**
   * This instance's own work, paced by its owner through runNow() (the collector's persist): the
   * scheduler leaves it alone, also when JOBS_ENABLED=false, and it runs without a connection or an
   * advisory lock of its own (no other instance has its data; `ctx.client` is not set).
   */
  perInstance?: boolean;
  /** Returns what it did (shown in GET /api/v1/system/jobs). */
  run: (ctx: JobContext) => Promise<Record<string, unknown> | void>;
}

export type JobOutcome = 'ok' | 'failed' | 'skipped';

export interface JobRun {
  job: string;
  instance: string;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  outcome: JobOutcome;
  details: Record<string, unknown>;
}

const INSTANCE = `${hostname()}:${process.pid}`;

interface JobState {
  spec: JobSpec;
  timer?: NodeJS.Timeout;
  nextRunAt?: number;
  running?: Promise<JobRun>;
  /** requestRun() came while a run was in progress: run again as soon as it ends. */
  rerun?: boolean;
  runs: number;
  failures: number;
  /** Runs of this instance since start, by outcome. */
  outcomes: Record<JobOutcome, number>;
  last?: JobRun;
}

/** This instance's view of a job, for the self-metrics (read when scraped). */
export interface JobStats {
  name: string;
  outcomes: Readonly<Record<JobOutcome, number>>;
  running: boolean;
  last: JobRun | undefined;
}

/**
 * Scheduled background work (rollup refresh, partitions, retention, collector persistence, …).
 * Runs never overlap: within an instance a job waits for its previous run; across instances a
 * PostgreSQL advisory lock lets exactly one run and the others record `skipped`. Jobs log and
 * record failures; they never throw into the scheduler.
 */
@Injectable()
export class JobsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('jobs');
  private readonly jobs = new Map<string, JobState>();
  private started = false;

  private readonly locks: AdvisoryLocks;

  constructor(
    private readonly database: Database,
    private readonly config: AppConfig,
  ) {
    this.locks = new AdvisoryLocks(database);
  }

  register(spec: JobSpec): void {
    if (this.jobs.has(spec.name)) throw new Error(`job ${spec.name} registered twice`);
    const clash = [...this.jobs.keys()].find((n) => jobLockKey(n) === jobLockKey(spec.name));
    if (clash)
      throw new Error(`jobs ${clash} and ${spec.name} would share an advisory lock (src/database/advisory-locks.ts)`);
    const state: JobState = { spec, runs: 0, failures: 0, outcomes: { ok: 0, failed: 0, skipped: 0 } };
    this.jobs.set(spec.name, state);
    if (this.started && !spec.perInstance) this.schedule(state, 1_000);
  }

  onApplicationBootstrap(): void {
    if (!this.config.jobsEnabled) {
      this.logger.log('scheduled jobs are off (JOBS_ENABLED=false); they run only when triggered');
      return;
    }
    this.started = true;
    for (const state of this.jobs.values()) if (!state.spec.perInstance) this.schedule(state, 1_000);
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.started = false;
    for (const s of this.jobs.values()) clearTimeout(s.timer);
    await Promise.allSettled([...this.jobs.values()].map((s) => s.running));
    await this.locks.close();
  }

  /**
   * Re-arms a job's timer, e.g. after its interval changed; also while it runs (a run the timer
   * started re-arms again when it ends, on the interval then in force).
   */
  reschedule(name: string): void {
    const s = this.jobs.get(name);
    if (s && this.started && !s.spec.perInstance) this.schedule(s, s.spec.every());
  }

  names(): string[] {
    return [...this.jobs.keys()];
  }

  /** Every job's runs by outcome since start, whether it runs now, and its last run on this instance. */
  stats(): JobStats[] {
    return [...this.jobs.values()].map((s) => ({
      name: s.spec.name,
      outcomes: s.outcomes,
      running: Boolean(s.running),
      last: s.last,
    }));
  }

  /**
   * Asks for a run soon, without waiting for it (e.g. the writer after a bulk load, so that rollups
   * do not lag by a whole interval): requests that come together make one run, and one that comes
   * during a run makes one more right after it. Nothing when the scheduler is off (JOBS_ENABLED=false).
   */
  requestRun(name: string, delayMs = 100): void {
    const s = this.jobs.get(name);
    if (!s || !this.started || s.spec.perInstance) return;
    if (!s.running) {
      if (s.nextRunAt === undefined || s.nextRunAt > Date.now() + delayMs) this.schedule(s, delayMs);
      return;
    }
    if (s.rerun) return;
    s.rerun = true;
    // Registered after the scheduler's own continuation (if any), so this schedule wins over its `every`.
    const again = () => {
      s.rerun = false;
      if (this.started) this.schedule(s, delayMs);
    };
    void s.running.then(again, again);
  }

  /** Runs a job now (or joins the run in progress) and returns what happened. */
  runNow(name: string): Promise<JobRun> {
    const s = this.jobs.get(name);
    if (!s) throw notFound(`No job named ${name}`, { jobs: this.names() });
    return this.execute(s);
  }

  async list() {
    const latest = new Map<string, JobRun>();
    try {
      const r = await this.database.readPool.query<JobRun & { started: Date; finished: Date | null }>(
        `SELECT DISTINCT ON (job) job, instance, started_at AS started, finished_at AS finished, duration_ms, outcome, details
         FROM job_runs ORDER BY job, started_at DESC`,
      );
      for (const row of r.rows) {
        latest.set(row.job, {
          job: row.job,
          instance: row.instance,
          started_at: row.started.toISOString(),
          finished_at: row.finished?.toISOString() ?? '',
          duration_ms: row.duration_ms,
          outcome: row.outcome,
          details: row.details,
        });
      }
    } catch {
      /* history unavailable while the database is down: show this instance's view */
    }
    return [...this.jobs.values()].map((s) => {
      const last = [s.last, latest.get(s.spec.name)]
        .filter(Boolean)
        .sort((a, b) => (a!.started_at < b!.started_at ? 1 : -1))[0];
      const every = s.spec.every();
      return {
        name: s.spec.name,
        description: s.spec.description,
        schedule: `every ${formatDuration(every)}`,
        interval_ms: every,
        enabled: s.spec.enabled?.() ?? true,
        scheduled: s.spec.perInstance ? true : this.started,
        running: Boolean(s.running),
        next_run_at: s.nextRunAt ? new Date(s.nextRunAt).toISOString() : null,
        runs: s.runs,
        failures: s.failures,
        last_run: last ?? null,
      };
    });
  }

  private schedule(s: JobState, delay: number): void {
    clearTimeout(s.timer);
    s.nextRunAt = Date.now() + delay;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      void this.execute(s).finally(() => {
        if (this.started) this.schedule(s, s.spec.every());
      });
    }, delay);
    s.timer.unref();
  }

  private execute(s: JobState): Promise<JobRun> {
    if (s.running) return s.running;
    if (s.timer === undefined) s.nextRunAt = undefined; // a run on demand leaves the timer (and its time) as it was
    s.running = this.runLocked(s).finally(() => {
      s.running = undefined;
    });
    return s.running;
  }

  private async runLocked(s: JobState): Promise<JobRun> {
    const name = s.spec.name;
    const started = new Date();
    const t0 = performance.now();
    let outcome: JobOutcome = 'ok';
    let details: Record<string, unknown>;
    if (s.spec.enabled && !s.spec.enabled()) {
      outcome = 'skipped';
      details = { reason: 'disabled' };
    } else if (s.spec.perInstance) {
      // It writes through the PointWriter: holding a connection here could starve it (PGlite has one).
      try {
        details =
          (await s.spec.run({ client: undefined as unknown as pg.PoolClient, logger: new Logger(`job:${name}`) })) ??
          {};
      } catch (err) {
        outcome = 'failed';
        details = { error: (err as Error)?.message ?? String(err) };
        this.logger.warn(`${name} failed: ${details.error}`);
      }
    } else {
      const client = new LazyClient(this.database.readPool);
      let locked = false;
      try {
        locked = await this.locks.tryLock(jobLockKey(name));
        if (!locked) {
          outcome = 'skipped';
          details = { reason: 'running on another instance' };
        } else {
          details = (await s.spec.run({ client, logger: new Logger(`job:${name}`) })) ?? {};
        }
      } catch (err) {
        outcome = 'failed';
        details = { error: (err as Error)?.message ?? String(err) };
        this.logger.warn(`${name} failed: ${details.error}`);
      } finally {
        client.release(outcome === 'failed');
        if (locked) await this.locks.unlock(jobLockKey(name)).catch(() => undefined);
      }
    }
    const run: JobRun = {
      job: name,
      instance: INSTANCE,
      started_at: started.toISOString(),
      finished_at: new Date().toISOString(),
      duration_ms: Math.round((performance.now() - t0) * 100) / 100,
      outcome,
      details,
    };
    s.runs++;
    s.outcomes[outcome]++;
    if (outcome === 'failed') s.failures++;
    s.last = run;
    await this.record(run);
    return run;
  }

  private recorded = 0;

  private async record(run: JobRun): Promise<void> {
    try {
      if (++this.recorded % 500 === 0)
        await this.database.writePool.query(`DELETE FROM job_runs WHERE started_at < now() - interval '7 days'`);
      await this.database.writePool.query(
        `INSERT INTO job_runs (job, instance, started_at, finished_at, duration_ms, outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          run.job,
          run.instance,
          run.started_at,
          run.finished_at,
          run.duration_ms,
          run.outcome,
          JSON.stringify(run.details),
        ],
      );
    } catch {
      /* the database may be down; the in-memory record stands */
    }
  }
}

/**
 * Session-level advisory locks held on one dedicated connection (SessionConnection), so a job
 * holds no pool connection just to keep its lock. If that connection drops, PostgreSQL releases its locks.
 */
class AdvisoryLocks {
  private readonly session: SessionConnection;

  constructor(database: Database) {
    this.session = new SessionConnection(database);
  }

  async tryLock(key: number): Promise<boolean> {
    const r = await this.session.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
      JOB_LOCK_NAMESPACE,
      key,
    ]);
    return r.rows[0].ok;
  }

  async unlock(key: number): Promise<void> {
    await this.session.query('SELECT pg_advisory_unlock($1, $2)', [JOB_LOCK_NAMESPACE, key]);
  }

  close(): Promise<void> {
    return this.session.close();
  }
}

/** A pool connection taken on the first query and kept until released. */
class LazyClient implements Queryable {
  private acquired?: Promise<pg.PoolClient>;

  constructor(private readonly pool: pg.Pool) {}

  query = ((...args: unknown[]) =>
    (this.acquired ??= this.pool.connect()).then((c) =>
      (c.query as (...a: unknown[]) => Promise<unknown>)(...args),
    )) as Queryable['query'];

  release(broken: boolean): void {
    void this.acquired?.then(
      (c) => c.release(broken || undefined),
      () => undefined,
    );
  }
}
