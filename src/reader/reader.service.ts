import { Injectable, Logger, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Database, Queryable } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import { ComponentHealth, HealthService } from '../system/health.service.js';
import {
  assess,
  findReader,
  probeReader,
  READ_SCHEMA,
  ReaderProbe,
  reconcileStatements,
  runawayBackends,
} from './reader-access.js';

type ReaderStatus = 'off' | 'no read schema' | 'role not found' | 'enforcing' | 'not enforcing' | 'unchecked';

/**
 * The SQL reader role (GRAFANA_READER_ROLE, Grafana's datasource user) and its watchdog.
 *
 * Grants: the reader gets USAGE on the read schema and SELECT on its views, at start and whenever
 * the role shows up later; privileges granted to it directly on Timescope's own schemas, and
 * default privileges of Timescope's role that would give it new partitions or chunks, are revoked
 * (the setup documented before issue 11 granted both). What Timescope cannot change (PUBLIC, role
 * memberships, a superuser reader) is reported: a warning in the log once and the `grafana_reader`
 * component of /health turns `degraded`.
 *
 * Statement limit: a role can lift its own `statement_timeout` with SET, so the `reader-watchdog`
 * job cancels every statement of the reader running longer than READER_STATEMENT_TIMEOUT_SECONDS
 * (and terminates a backend whose cancelled statement is still running at the next check, or that
 * sits idle in a transaction that long, holding locks that would stall partition drops). Seeing
 * and cancelling another role's queries needs that role's privileges: `GRANT grafana_reader TO
 * timescope` (or pg_read_all_stats + pg_signal_backend); without them it says so, once, in the log,
 * in /health and in the job's details.
 */
@Injectable()
export class ReaderService implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('grafana-reader');
  private status: ReaderStatus;
  private probe?: ReaderProbe;
  private problems: string[] = [];
  private warnings: string[] = [];
  private readonly reported = new Set<string>();
  private lastCheck: string | null = null;
  private lastError: string | null = null;
  private cancelledTotal = 0;
  private terminatedTotal = 0;
  /** Statements cancelled at the previous check (pid → query_start): still running at the next one means terminate. */
  private cancelled = new Map<number, number>();

  constructor(
    private readonly database: Database,
    private readonly jobs: JobsService,
    private readonly health: HealthService,
    private readonly config: AppConfig,
  ) {
    this.status = config.reader.role ? 'unchecked' : 'off';
  }

  onModuleInit(): void {
    this.jobs.register({
      name: 'reader-watchdog',
      description:
        'Keeps the Grafana reader role (GRAFANA_READER_ROLE) to the timescope_read views and cancels its statements running longer than READER_STATEMENT_TIMEOUT_SECONDS',
      every: () => this.config.reader.watchdogIntervalMs,
      run: ({ client }) => this.check(client),
    });
    this.health.register('grafana_reader', () => this.componentHealth());
  }

  /** Grants at start, so Grafana can read as soon as the service is up (a failure here is logged, never fatal). */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.reader.role) return;
    try {
      await this.refresh(this.database.readPool);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.logger.warn(`cannot check the reader role ${this.config.reader.role}: ${this.lastError}`);
    }
  }

  /** One watchdog run: the role's grants (a few catalog reads; fixed when wrong), then its statements past the limit. */
  async check(client: Queryable): Promise<Record<string, unknown>> {
    const role = this.config.reader.role;
    if (!role) return { role: null, status: this.status };
    await this.refresh(client);
    const limit = this.config.reader.statementTimeoutSeconds;
    const details: Record<string, unknown> = { role, status: this.status, limit_seconds: limit };
    const p = this.probe;
    if (!p || limit === 0 || !p.canSeeQueries || !p.canSignal) {
      if (this.problems.length > 0) details.problems = this.problems;
      return details;
    }
    const cancelled: unknown[] = [];
    const terminated: unknown[] = [];
    const seen = new Map<number, number>();
    for (const b of await runawayBackends(client, p.oid, limit)) {
      const started = b.query_start?.getTime() ?? 0;
      const where = `pid ${b.pid}${b.application_name ? `, ${b.application_name}` : ''}${b.client_addr ? ` from ${b.client_addr}` : ''}`;
      const report = { pid: b.pid, state: b.state, seconds: b.seconds, query: b.query };
      try {
        if (b.state === 'active' && this.cancelled.get(b.pid) !== started) {
          const ok = (await client.query<{ ok: boolean }>('SELECT pg_cancel_backend($1) AS ok', [b.pid])).rows[0]?.ok;
          if (!ok) continue; // it ended meanwhile
          seen.set(b.pid, started);
          this.cancelledTotal++;
          cancelled.push(report);
          this.logger.warn(
            `cancelled a statement of ${role} running ${b.seconds} s, past READER_STATEMENT_TIMEOUT_SECONDS=${limit} (${where}): ${b.query}`,
          );
        } else {
          const ok = (await client.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [b.pid])).rows[0]
            ?.ok;
          if (!ok) continue;
          this.terminatedTotal++;
          terminated.push(report);
          const why =
            b.state === 'active' ? 'its statement outlived a cancel' : `idle in a transaction for ${b.seconds} s`;
          this.logger.warn(
            `terminated a session of ${role} (${why}, READER_STATEMENT_TIMEOUT_SECONDS=${limit}; ${where}): ${b.query}`,
          );
        }
      } catch (err) {
        // Privileges changed since the probe: the next run's probe says so.
        throw new Error(`cannot signal pid ${b.pid} of ${role}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.cancelled = seen;
    return { ...details, cancelled, terminated };
  }

  /** Finds the role, fixes its grants, and records what is wrong. */
  private async refresh(client: Queryable): Promise<void> {
    const role = this.config.reader.role!;
    this.lastCheck = toIso(Date.now());
    const found = await findReader(client, role);
    if (!found.schema)
      return this.settle(
        'no read schema',
        [`the ${READ_SCHEMA} schema is missing: apply the migrations (make migrate)`],
        [],
      );
    if (found.oid === null) {
      this.probe = undefined;
      return this.settle('role not found', [], []);
    }
    let p = await probeReader(client, role);
    const statements = p ? reconcileStatements(p) : [];
    const failed: string[] = [];
    for (const sql of statements) {
      try {
        await client.query(sql);
        this.logger.log(`${role}: ${sql}`);
      } catch (err) {
        // Reported (once) with the problems, not logged at every run.
        failed.push(`${sql} failed: ${(err as Error).message}`);
      }
    }
    if (statements.length > 0) p = await probeReader(client, role);
    this.probe = p;
    if (!p) return this.settle('role not found', [], []);
    const { problems, warnings } = assess(p, this.config.reader.statementTimeoutSeconds);
    problems.push(...failed);
    if (this.config.reader.statementTimeoutSeconds > 0 && !this.config.jobsEnabled)
      warnings.push(
        'JOBS_ENABLED=false: the watchdog runs only when triggered (POST /api/v1/system/jobs/reader-watchdog/run)',
      );
    const enforcing = this.config.reader.statementTimeoutSeconds === 0 || (p.canSeeQueries && p.canSignal);
    this.settle(enforcing ? 'enforcing' : 'not enforcing', problems, warnings);
  }

  /** Records the state; each problem or warning is logged once, and its end is logged too. */
  private settle(status: ReaderStatus, problems: string[], warnings: string[]): void {
    const role = this.config.reader.role;
    if (status !== this.status) {
      if (status === 'role not found')
        this.logger.log(
          `no role ${role} in this database cluster: nothing to grant or watch until it exists (GRAFANA_READER_ROLE=none turns this off)`,
        );
      else if (status === 'enforcing')
        this.logger.log(
          `${role} is granted the ${READ_SCHEMA} views; ${this.config.reader.statementTimeoutSeconds > 0 ? `its statements are cancelled after ${this.config.reader.statementTimeoutSeconds} s` : 'no statement limit (READER_STATEMENT_TIMEOUT_SECONDS=0)'}`,
        );
    }
    for (const m of problems) if (!this.reported.has(m)) this.logger.warn(m);
    for (const m of warnings) if (!this.reported.has(m)) this.logger.warn(m);
    const now = new Set([...problems, ...warnings]);
    for (const m of this.reported) if (!now.has(m)) this.logger.log(`resolved: ${m}`);
    this.reported.clear();
    for (const m of now) this.reported.add(m);
    this.status = status;
    this.problems = problems;
    this.warnings = warnings;
    this.lastError = null;
  }

  componentHealth(): ComponentHealth {
    const p = this.probe;
    return {
      status: this.status,
      level: this.problems.length > 0 ? 'degraded' : 'healthy',
      role: this.config.reader.role ?? null,
      schema: READ_SCHEMA,
      statement_timeout_seconds: this.config.reader.statementTimeoutSeconds,
      watchdog: {
        interval_seconds: this.config.reader.watchdogIntervalMs / 1000,
        scheduled: this.config.jobsEnabled,
        can_cancel: p ? p.canSeeQueries && p.canSignal : null,
        cancelled: this.cancelledTotal,
        terminated: this.terminatedTotal,
      },
      problems: this.problems,
      warnings: this.warnings,
      last_check: this.lastCheck,
      ...(this.lastError ? { error: this.lastError } : {}),
    };
  }
}
