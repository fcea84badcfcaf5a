import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { hostname } from 'node:os';
import { toApiError } from '../common/error-envelope.js';
import { ApiError, fieldErrors, invalidQuery, notFound } from '../common/errors.js';
import { toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import { RollupAggregation, RollupReader } from '../storage/rollup-reader.js';
import { PointWriter } from '../storage/point-writer.js';
import { ROLLUP_AGGREGATIONS } from '../storage/tiers.js';
import { HealthService } from '../system/health.service.js';
import { Notification, WebhookService } from '../webhooks/webhook.service.js';
import { PipelinePlan, SOURCE_KEY } from './definition.js';
import { assemble, derivedPoints, Execution, pointsByStart, toBatches } from './execute.js';
import { PipelineDefinitions } from './pipeline-definitions.js';
import { PipelineLocks } from './pipeline-locks.js';
import { PipelineRow, PipelinesRepository, RunRecord, RunRow } from './pipelines.repository.js';
import { RangeInput, resolveRange } from './run-range.js';
import { DeliveryStatus, dryRunView, metricRunOutput, runView, webhookPayloads, windowJson } from './views.js';
import { backoffMs, dueWindows, MAX_BACKOFF_MS, windowEnds } from './windows.js';

const INSTANCE = `${hostname()}:${process.pid}`;
/** Points per write through the PointWriter (well under its queue bound). */
const POINTS_PER_WRITE = 10_000;
/** How long a manual run waits for a run of the same pipeline to finish before answering 409. */
const MANUAL_LOCK_WAIT_MS = 10_000;

export type Trigger = 'schedule' | 'manual';

interface RunOptions {
  trigger: Trigger;
  /** Windows a scheduled run skipped (past PIPELINE_MAX_CATCHUP_WINDOWS), reported on the run. */
  skipped?: { windows: number; from: number; to: number };
  /** A scheduled run moves the watermark from `from` to `to`, in the transaction that delivers. */
  watermark?: { from: number | null; to: number };
}

/**
 * Runs saved pipelines: now (manual runs), on their schedule (the `pipelines` job, with bounded
 * catch-up after downtime and back-off after failures), and as dry-runs over history; records every
 * run. Aggregation happens in PostgreSQL (the repository for raw points, storage's RollupReader
 * where rollup tiers serve whole windows); formulas and the other row stages run in Node on the
 * aggregated rows (execute.ts); derived series go through the one point writer; webhooks through
 * the shared WebhookService.
 */
@Injectable()
export class PipelineRunner implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('pipelines');
  private readonly locks: PipelineLocks;
  private clock: () => number = Date.now;
  private nextDueAt = 0;
  private closing = false;
  private lastTick: { at: string; scheduled: number; failing: number } | null = null;

  constructor(
    private readonly repo: PipelinesRepository,
    private readonly definitions: PipelineDefinitions,
    private readonly config: AppConfig,
    private readonly jobs: JobsService,
    private readonly writer: PointWriter,
    private readonly webhooks: WebhookService,
    private readonly health: HealthService,
    private readonly database: Database,
    private readonly rollups: RollupReader,
  ) {
    this.locks = new PipelineLocks(database);
  }

  onModuleInit(): void {
    this.jobs.register({
      name: 'pipelines',
      description: 'Runs scheduled pipelines over the windows that have ended (bounded catch-up after downtime)',
      // Wake when the next window is due, at least once a minute to see pipelines saved elsewhere.
      every: () => Math.min(60_000, Math.max(1_000, this.nextDueAt - Date.now())),
      run: () => this.runScheduled(),
    });
    this.jobs.register({
      name: 'pipeline-runs-prune',
      description: `Forgets pipeline runs older than ${this.config.pipelines.runsRetentionDays} days`,
      every: () => 6 * 3_600_000,
      run: async () => ({ deleted: await this.repo.pruneRuns(this.config.pipelines.runsRetentionDays) }),
    });
    this.health.register('pipelines', () => ({
      status: this.lastTick ? 'running' : this.config.jobsEnabled ? 'starting' : 'on demand',
      level: 'healthy',
      scheduled: this.lastTick?.scheduled ?? null,
      failing: this.lastTick?.failing ?? null,
      last_tick_at: this.lastTick?.at ?? null,
    }));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    await this.locks.close();
  }

  /** Test seam: the scheduler's clock. */
  useClock(clock: () => number): void {
    this.clock = clock;
  }

  /** A pipeline was saved: look at the schedule again now. */
  wake(): void {
    this.nextDueAt = 0;
    this.jobs.reschedule('pipelines');
  }

  /** When the next window of a scheduled, enabled pipeline ends (null: none is scheduled). */
  nextWindowEnd(row: PipelineRow, plan: PipelinePlan | null): string | null {
    if (!plan || !row.definition.schedule || !row.enabled) return null;
    const due = dueWindows(
      row.last_window_end?.getTime() ?? null,
      this.clock(),
      plan.stepMs,
      plan.delayMs,
      this.config.pipelines.maxCatchupWindows,
    );
    return toIso(due.ends.length ? due.ends[0] : due.nextDueAt - plan.delayMs);
  }

  /** POST /pipelines/{id}/run: runs now over from/to (default: the last window), delivers, records. */
  async run(id: string, input: RangeInput) {
    const row = await this.definitions.find(id);
    const plan = this.definitions.planOf(row);
    const now = this.clock();
    const range = resolveRange(plan, input, now, this.config.pipelines.maxWindows);
    const ends = windowEnds(range.from, range.to, plan.stepMs, now);
    if (!(await this.locks.acquire(row.id, MANUAL_LOCK_WAIT_MS))) {
      throw new ApiError(409, 'CONFLICT', `Pipeline ${row.id} is running; retry when that run has finished`, {
        pipeline_id: row.id,
      });
    }
    try {
      const r = await this.perform(row, plan, ends, range, { trigger: 'manual' });
      if (r.error) throw withRun(r.error, r.run);
      return {
        run: r.run && (await this.runWithDeliveries(r.run, row)),
        columns: r.exec!.columns,
        rollup: r.exec!.rollup ?? null,
        windows: r.windowsJson,
        output: r.output,
      };
    } finally {
      await this.locks.release(row.id);
    }
  }

  /** POST /pipelines/{id}/dry-run: what a run over from/to would emit, window by window; delivers nothing. */
  async dryRun(id: string, input: RangeInput) {
    const row = await this.definitions.find(id);
    return this.preview(this.definitions.planOf(row), input, { id: row.id, name: row.name, version: row.version });
  }

  /** POST /pipelines/dry-run: the same for a definition that is not saved yet (tuning before saving). */
  async dryRunDefinition(body: unknown, input: RangeInput) {
    const b = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as Record<
      string,
      unknown
    >;
    const { from, to, ...definition } = b;
    const parsed = await this.definitions.check({ name: 'dry-run', ...definition }); // a draft needs no name yet
    return this.preview(parsed.plan, { from: input.from ?? from, to: input.to ?? to }, null);
  }

  /** GET /pipelines/{id}/runs: the run history, newest first, with the current state of webhook deliveries. */
  async runs(id: string, limitRaw: unknown) {
    const row = await this.definitions.find(id);
    const limit = limitRaw === undefined || limitRaw === '' ? 100 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw invalidQuery('limit', 'limit must be an integer from 1 to 1000');
    const runs = await this.repo.runs(row.id, limit);
    const deliveries = await this.deliveryStatuses(row, runs);
    return { pipeline_id: Number(row.id), runs: runs.map((r) => runView(r, deliveries)), total: runs.length };
  }

  /** The `pipelines` job: every scheduled pipeline whose next window has ended, one run at a time each. */
  async runScheduled(): Promise<Record<string, unknown>> {
    const now = this.clock();
    const rows = await this.repo.scheduled();
    const report = { pipelines: rows.length, ran: 0, windows: 0, rows: 0, failed: 0, skipped_windows: 0, busy: 0 };
    let nextDue = now + 60_000;
    let failing = 0;
    for (const row of rows) {
      if (this.closing) break;
      if (row.failures > 0) failing++; // until a run below says otherwise
      if (row.retry_at && row.retry_at.getTime() > now) {
        nextDue = Math.min(nextDue, row.retry_at.getTime());
        continue;
      }
      let plan: PipelinePlan;
      try {
        plan = this.definitions.planOf(row);
      } catch (err) {
        // A stored definition that no longer validates (a newer release is stricter): record, back off.
        await this.recordFailure(row, now, 'schedule', toApiError(err).message);
        report.failed++;
        if (row.failures === 0) failing++;
        continue;
      }
      const maxCatchup = this.config.pipelines.maxCatchupWindows;
      const first = dueWindows(row.last_window_end?.getTime() ?? null, now, plan.stepMs, plan.delayMs, maxCatchup);
      nextDue = Math.min(nextDue, first.nextDueAt);
      if (first.ends.length === 0) continue;
      if (!(await this.locks.tryAcquire(row.id))) {
        report.busy++; // a manual run, or another instance: the windows stay due
        continue;
      }
      try {
        // The watermark as it is now that the lock is held: a run that just finished has moved it.
        const fresh = await this.repo.get(row.id);
        if (
          !fresh ||
          !fresh.enabled ||
          fresh.version !== row.version ||
          (fresh.retry_at && fresh.retry_at.getTime() > now)
        )
          continue;
        const lastEnd = fresh.last_window_end?.getTime() ?? null;
        const due = dueWindows(lastEnd, now, plan.stepMs, plan.delayMs, maxCatchup);
        if (due.ends.length === 0) continue;
        const range = { from: due.ends[0] - plan.stepMs, to: due.ends[due.ends.length - 1] };
        if (due.skipped > 0) {
          this.logger.warn(
            `pipeline ${row.id} (${row.name}): ${due.skipped} window(s) ending in (${toIso(due.skippedFrom!)}, ${toIso(due.skippedTo!)}] were missed and are skipped (PIPELINE_MAX_CATCHUP_WINDOWS); POST /api/v1/pipelines/${row.id}/run?from=…&to=… replays them`,
          );
        }
        const r = await this.perform(row, plan, due.ends, range, {
          trigger: 'schedule',
          skipped: due.skipped > 0 ? { windows: due.skipped, from: due.skippedFrom!, to: due.skippedTo! } : undefined,
          watermark: { from: lastEnd, to: due.ends[due.ends.length - 1] },
        });
        report.ran++;
        if (row.failures > 0) failing--;
        if (r.error) {
          report.failed++;
          failing++;
          // A moved watermark (another run covered these windows) is no reason to wait.
          if (r.error.getStatus() !== 409)
            await this.repo.backOff(row.id, now + backoffMs(plan.stepMs, fresh.failures + 1));
        } else {
          report.windows += due.ends.length;
          report.rows += r.exec!.rowCount;
          report.skipped_windows += due.skipped;
        }
      } finally {
        await this.locks.release(row.id);
      }
    }
    this.nextDueAt = nextDue;
    this.lastTick = { at: toIso(now), scheduled: rows.length, failing };
    return { ...report, next_due_at: toIso(nextDue) };
  }

  // ---- internals

  /** Aggregates in PostgreSQL, then runs the row stages: what the windows produce. */
  private async evaluate(plan: PipelinePlan, ends: number[]): Promise<Execution> {
    if (ends.length === 0) return assemble(plan, ends, []);
    const maxSeries = this.config.query.maxSeries;
    const ids = await this.repo.seriesIds(plan, maxSeries);
    if (ids.length > maxSeries) {
      const at = plan.definition.pipeline.findIndex((s) => s.operation === 'filter');
      throw fieldErrors([
        {
          field: at >= 0 ? `pipeline[${at}].params` : 'pipeline',
          message: `the filter matches more than ${maxSeries} series (QUERY_MAX_SERIES); narrow it by metrics, sources or tags`,
        },
      ]);
    }
    const maxRows = this.config.pipelines.maxRows;
    // A row holds one cell per metric: bound the cells read before assembling rows.
    const maxCells = maxRows * Math.max(1, plan.metrics?.length ?? 10);
    // Tumbling windows of functions a rollup answers exactly read rollup tiers where the query planner would.
    let fromRollups: Awaited<ReturnType<RollupReader['groupedBuckets']>>;
    if (plan.stepMs === plan.windowMs && plan.functions.every((f) => ROLLUP_AGGREGATIONS.has(f))) {
      const segments = await this.rollups.cover(
        ids,
        ends[0] - plan.windowMs,
        ends[ends.length - 1],
        plan.windowMs,
        'avg',
      );
      const groupBy = plan.groupBy.map((k) =>
        k === SOURCE_KEY ? { by: 'source' as const } : { by: 'tag' as const, key: k },
      );
      fromRollups = await this.rollups.groupedBuckets(
        {
          seriesIds: ids,
          widthMs: plan.windowMs,
          functions: plan.functions as RollupAggregation[],
          groupBy,
          limit: maxCells,
        },
        segments,
      );
    }
    const tier = fromRollups?.tier;
    const cells =
      fromRollups?.rows ??
      (await this.repo.aggregate({
        seriesIds: ids,
        windowMs: plan.windowMs,
        stepMs: plan.stepMs,
        ends,
        functions: plan.functions,
        groupBy: plan.groupBy,
        limit: maxCells,
      }));
    const exec = cells.length > maxCells ? undefined : assemble(plan, ends, cells);
    if (!exec || exec.rowCount > maxRows) {
      throw new ApiError(
        422,
        'UNPROCESSABLE_ENTITY',
        `The pipeline produces more than ${maxRows} rows over this range (PIPELINE_MAX_ROWS); narrow the range or the filter`,
        { max_rows: maxRows },
      );
    }
    return { ...exec, rollup: tier?.label ?? null };
  }

  private async preview(
    plan: PipelinePlan,
    input: RangeInput,
    pipeline: { id: number; name: string; version: number } | null,
  ) {
    const now = this.clock();
    const range = resolveRange(plan, input, now, this.config.pipelines.maxWindows);
    const ends = windowEnds(range.from, range.to, plan.stepMs, now);
    const exec = await this.evaluate(plan, ends);
    return dryRunView(plan, exec, range, pipeline, derivedPoints(plan, exec));
  }

  /**
   * One run: evaluate, deliver, record. Never throws for a failed run: the error comes back with it.
   * The webhook parts, the run record and (scheduled) the watermark move commit in one transaction:
   * a run either queued all its parts and moved past its windows, or queued none and stays due, so
   * a retry neither sends a part twice nor loses one. Derived points are written before (an
   * idempotent upsert: a retry rewrites the same points).
   */
  private async perform(
    row: PipelineRow,
    plan: PipelinePlan,
    ends: number[],
    range: { from: number; to: number },
    opts: RunOptions,
  ) {
    const startedAt = Date.now();
    let exec: Execution | undefined;
    let output: Record<string, unknown> = { destination: plan.definition.output.destination };
    let windowsJson: unknown[] = [];
    let run: RunRow | undefined;
    let error: ApiError | undefined;
    const skipped = opts.skipped && {
      skipped: { windows: opts.skipped.windows, from: toIso(opts.skipped.from), to: toIso(opts.skipped.to) },
    };
    const record = (status: 'ok' | 'failed', out: Record<string, unknown>): RunRecord => ({
      pipelineId: row.id,
      version: row.version,
      trigger: opts.trigger,
      status,
      instance: INSTANCE,
      startedAt,
      finishedAt: Date.now(),
      from: ends.length ? ends[0] - plan.windowMs : range.from,
      to: ends.length ? ends[ends.length - 1] : range.to,
      windows: ends.length,
      rows: exec?.rowCount ?? 0,
      skippedWindows: opts.skipped?.windows ?? 0,
      output: { ...out, ...skipped },
      error: error ? error.message : null,
    });
    try {
      exec = await this.evaluate(plan, ends);
      const staged = await this.stage(row, plan, exec, opts.trigger, range);
      const committed = await this.commit(row.id, staged.notifications, opts.watermark, (deliveries) =>
        record('ok', staged.output(deliveries)),
      );
      run = committed.run;
      output = committed.output;
      const byStart = staged.points ? pointsByStart(staged.points) : undefined;
      windowsJson = exec.windows.map((w) => windowJson(w, exec!, plan, byStart));
    } catch (err) {
      error = toApiError(err);
      if (error.getStatus() >= 500)
        this.logger.warn(
          `pipeline ${row.id} (${row.name}) ${opts.trigger} run failed: ${(err as Error)?.message ?? err}`,
        );
      output = { ...output, ...skipped };
      run = await this.repo.insertRun(record('failed', output)).catch((e: unknown) => {
        this.logger.warn(`pipeline ${row.id}: the run could not be recorded: ${(e as Error).message}`);
        return undefined;
      });
    }
    return { run, exec, output, windowsJson, error };
  }

  /** In one transaction: queue the webhook parts, move the watermark (scheduled runs), record the run. */
  private async commit(
    pipelineId: number,
    notifications: Notification[],
    watermark: RunOptions['watermark'],
    record: (deliveries: number[]) => RunRecord,
  ) {
    const committed = await this.database.generalTransaction(async (c) => {
      // First: its row lock orders concurrent runs of this pipeline until COMMIT.
      if (watermark && !(await this.repo.advance(pipelineId, watermark.from, watermark.to, c))) {
        throw new ApiError(
          409,
          'CONFLICT',
          `The watermark of pipeline ${pipelineId} moved during the run (another run covered these windows); nothing was delivered`,
        );
      }
      const deliveries: number[] = [];
      for (const n of notifications) deliveries.push(Number((await this.webhooks.enqueueIn(c, n)).id));
      const rec = record(deliveries);
      const run = await this.repo.insertRun(rec, c);
      if (!run) throw notFound(`Pipeline ${pipelineId} was deleted during the run; nothing was delivered`);
      return { run, output: rec.output };
    });
    if (notifications.length) this.webhooks.kick();
    return committed;
  }

  /**
   * What a run delivers: derived points are written now; webhook parts are built here and queued by
   * commit(). `output` makes the run's output record from the queued delivery ids.
   */
  private async stage(
    row: PipelineRow,
    plan: PipelinePlan,
    exec: Execution,
    trigger: Trigger,
    range: { from: number; to: number },
  ) {
    const out = plan.definition.output;
    if (out.destination === 'metric') {
      const derived = derivedPoints(plan, exec);
      for (const batch of toBatches(derived.points, out.unit, POINTS_PER_WRITE))
        await this.writer.write(batch, 'pipeline');
      const output = metricRunOutput(plan, derived);
      return { points: derived.points, notifications: [], output: () => output };
    }
    if (out.destination === 'webhook') {
      const notifications: Notification[] = webhookPayloads(row, plan, exec, trigger, range).map((payload) => ({
        subject: `pipeline:${row.id}`,
        event: 'pipeline.output',
        url: out.url,
        secret: row.webhook_secret,
        payload,
      }));
      return {
        points: undefined,
        notifications,
        output: (deliveries: number[]) => ({ destination: 'webhook', url: out.url, deliveries }),
      };
    }
    return { points: undefined, notifications: [], output: () => ({ destination: 'none' }) };
  }

  private async recordFailure(row: PipelineRow, now: number, trigger: Trigger, message: string): Promise<void> {
    await this.repo
      .insertRun({
        pipelineId: row.id,
        version: row.version,
        trigger,
        status: 'failed',
        instance: INSTANCE,
        startedAt: now,
        finishedAt: now,
        from: null,
        to: null,
        windows: 0,
        rows: 0,
        skippedWindows: 0,
        output: {},
        error: message,
      })
      .catch(() => undefined);
    await this.repo.backOff(row.id, now + MAX_BACKOFF_MS).catch(() => undefined);
  }

  private async runWithDeliveries(run: RunRow, row: PipelineRow) {
    return runView(run, await this.deliveryStatuses(row, [run]));
  }

  /** Current state of the webhook deliveries of these runs (delivery is asynchronous and retried). */
  private async deliveryStatuses(row: PipelineRow, runs: RunRow[]) {
    const map = new Map<number, DeliveryStatus>();
    if (!runs.some((r) => Array.isArray(r.output.deliveries) && r.output.deliveries.length > 0)) return map;
    for (const d of await this.webhooks.list({ subject: `pipeline:${row.id}`, limit: 1000 })) {
      map.set(Number(d.id), {
        id: Number(d.id),
        status: d.status,
        attempts: d.attempts,
        response_status: d.response_status,
        last_error: d.last_error,
      });
    }
    return map;
  }
}

function withRun(err: ApiError, run: RunRow | undefined): ApiError {
  if (!run) return err;
  return new ApiError(
    err.getStatus(),
    err.code,
    err.message,
    { ...(err.details ?? {}), run_id: Number(run.id) },
    err.retryAfter,
  );
}
