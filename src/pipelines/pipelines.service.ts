import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { toApiError } from '../common/error-envelope.js';
import { ApiError, fieldErrors, invalidQuery, invalidRequest, notFound } from '../common/errors.js';
import { formatDuration, toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import { coarsestTier, planSegments, Segment } from '../query/plan.js';
import { QueryRepository } from '../query/query.repository.js';
import { parseRange } from '../query/query-spec.js';
import { ROLLUP_AGGREGATIONS } from '../storage/tiers.js';
import { PointWriter } from '../storage/point-writer.js';
import { HealthService } from '../system/health.service.js';
import { Notification, WebhookService } from '../webhooks/webhook.service.js';
import { DefinitionLimits, parsePipeline, ParsedPipeline, PipelinePlan } from './definition.js';
import { assemble, derivedPoints, DerivedPoint, derivedSource, Execution, pointsByStart, toBatches, windowJson } from './execute.js';
import { PipelineLocks } from './pipeline-locks.js';
import { PipelineRow, PipelinesRepository, RunRecord, RunRow } from './pipelines.repository.js';
import { rowJson } from './stages.js';
import { countWindows, dueWindows, lastWindow, windowEnds } from './windows.js';

const INSTANCE = `${hostname()}:${process.pid}`;
/** Rows per webhook delivery: a run with more sends several parts. */
const ROWS_PER_DELIVERY = 1_000;
/** Points per write through the PointWriter (well under its queue bound). */
const POINTS_PER_WRITE = 10_000;
/** How long a manual run waits for a run of the same pipeline to finish before answering 409. */
const MANUAL_LOCK_WAIT_MS = 10_000;
const MAX_BACKOFF_MS = 3_600_000;

export type Trigger = 'schedule' | 'manual';

interface RunOptions {
  trigger: Trigger;
  /** Windows a scheduled run skipped (past PIPELINE_MAX_CATCHUP_WINDOWS), reported on the run. */
  skipped?: { windows: number; from: number; to: number };
  /** A scheduled run moves the watermark from `from` to `to`, in the transaction that delivers. */
  watermark?: { from: number | null; to: number };
}

interface RangeInput {
  from?: unknown;
  to?: unknown;
}

/**
 * Saved pipelines: validation at save, runs now or on a schedule, dry-runs over history, and a
 * record of every run. Aggregation happens in PostgreSQL (the repository); formulas and the other
 * row stages run in Node on the aggregated rows (execute.ts); derived series go through the one
 * point writer; webhooks through the shared WebhookService.
 */
@Injectable()
export class PipelinesService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('pipelines');
  private readonly limits: DefinitionLimits;
  private readonly locks: PipelineLocks;
  private readonly plans = new Map<number, { version: number; plan: PipelinePlan }>();
  private clock: () => number = Date.now;
  private nextDueAt = 0;
  private closing = false;
  private lastTick: { at: string; scheduled: number; failing: number } | null = null;

  constructor(
    private readonly repo: PipelinesRepository,
    private readonly config: AppConfig,
    private readonly jobs: JobsService,
    private readonly writer: PointWriter,
    private readonly webhooks: WebhookService,
    private readonly health: HealthService,
    private readonly database: Database,
    private readonly queries: QueryRepository,
  ) {
    const i = config.ingest;
    this.limits = { maxNameLength: i.maxNameLength, maxTags: i.maxTags, maxTagKeyLength: i.maxTagKeyLength, maxTagValueLength: i.maxTagValueLength };
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

  // ---- definitions

  async create(body: unknown) {
    const parsed = await this.check(body);
    const secret = parsed.definition.output.destination !== 'webhook' ? null : parsed.secret === undefined ? newSecret() : parsed.secret;
    let row: PipelineRow | undefined;
    try {
      row = await this.repo.insert(parsed.definition, secret);
    } catch (err) {
      throw uniqueName(err, parsed.definition.name);
    }
    if (!row) throw nameConflict(parsed.definition.name);
    this.wake();
    const view = await this.view(row, parsed.plan);
    // A secret Timescope made is shown once, here; afterwards only that deliveries are signed.
    return parsed.secret === undefined && secret ? { ...view, webhook_secret: secret } : view;
  }

  async update(id: string, body: unknown) {
    const existing = await this.find(id);
    const parsed = await this.check(body);
    const wasWebhook = existing.definition.output.destination === 'webhook';
    const generated = parsed.definition.output.destination === 'webhook' && parsed.secret === undefined && !wasWebhook;
    const secret =
      parsed.definition.output.destination !== 'webhook' ? null : parsed.secret !== undefined ? parsed.secret : wasWebhook ? existing.webhook_secret : newSecret();
    if (await this.repo.nameTaken(parsed.definition.name, existing.id)) throw nameConflict(parsed.definition.name);
    let row: PipelineRow | undefined;
    try {
      row = await this.repo.update(existing.id, parsed.definition, secret);
    } catch (err) {
      throw uniqueName(err, parsed.definition.name);
    }
    if (!row) throw notFound(`No pipeline ${id}`);
    this.wake();
    const view = await this.view(row, parsed.plan);
    return generated ? { ...view, webhook_secret: secret } : view;
  }

  async get(id: string) {
    const row = await this.find(id);
    return this.view(row, this.planOrNull(row), (await this.repo.lastRuns([row.id])).get(row.id));
  }

  async list() {
    const rows = await this.repo.list();
    const last = await this.repo.lastRuns(rows.map((r) => r.id));
    const pipelines = await Promise.all(rows.map((r) => this.view(r, this.planOrNull(r), last.get(r.id))));
    return { pipelines, total: pipelines.length };
  }

  async remove(id: string): Promise<void> {
    const row = await this.find(id);
    await this.repo.delete(row.id);
    this.plans.delete(row.id);
  }

  // ---- running

  /** from/to of a run or dry-run: in the query string, or a JSON body {from, to}. */
  rangeInput(query: Record<string, unknown>, body: unknown): RangeInput {
    if (body === undefined || body === null || body === '') return { from: query.from, to: query.to };
    if (typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('The body of a run must be a JSON object {from?, to?}, or empty');
    const b = body as Record<string, unknown>;
    const unknown = Object.keys(b).filter((k) => k !== 'from' && k !== 'to');
    if (unknown.length) throw fieldErrors(unknown.map((k) => ({ field: k, message: 'unknown field (a run takes from and to)' })));
    return { from: query.from ?? b.from, to: query.to ?? b.to };
  }

  /** POST /pipelines/{id}/run: runs now over from/to (default: the last window), delivers, records. */
  async run(id: string, input: RangeInput) {
    const row = await this.find(id);
    const plan = this.planOf(row);
    const now = this.clock();
    const range = this.range(plan, input, now);
    const ends = windowEnds(range.from, range.to, plan.stepMs, now);
    if (!(await this.locks.acquire(row.id, MANUAL_LOCK_WAIT_MS))) {
      throw new ApiError(409, 'CONFLICT', `Pipeline ${row.id} is running; retry when that run has finished`, { pipeline_id: row.id });
    }
    try {
      const r = await this.perform(row, plan, ends, range, { trigger: 'manual' });
      if (r.error) throw withRun(r.error, r.run);
      return { run: r.run && (await this.runView(r.run, row)), columns: r.exec!.columns, rollup: r.exec!.rollup ?? null, windows: r.windowsJson, output: r.output };
    } finally {
      await this.locks.release(row.id);
    }
  }

  /** POST /pipelines/{id}/dry-run: what a run over from/to would emit, window by window; delivers nothing. */
  async dryRun(id: string, input: RangeInput) {
    const row = await this.find(id);
    return this.preview(this.planOf(row), input, { id: row.id, name: row.name, version: row.version });
  }

  /** POST /pipelines/dry-run: the same for a definition that is not saved yet (tuning before saving). */
  async dryRunDefinition(body: unknown, input: RangeInput) {
    const b = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
    const { from, to, ...definition } = b;
    const parsed = await this.check({ name: 'dry-run', ...definition }); // a draft needs no name yet
    return this.preview(parsed.plan, { from: input.from ?? from, to: input.to ?? to }, null);
  }

  async runs(id: string, limitRaw: unknown) {
    const row = await this.find(id);
    const limit = limitRaw === undefined || limitRaw === '' ? 100 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalidQuery('limit', 'limit must be an integer from 1 to 1000');
    const runs = await this.repo.runs(row.id, limit);
    const deliveries = await this.deliveryStatuses(row, runs);
    return { pipeline_id: Number(row.id), runs: runs.map((r) => this.runJson(r, deliveries)), total: runs.length };
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
        plan = this.planOf(row);
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
        if (!fresh || !fresh.enabled || fresh.version !== row.version || (fresh.retry_at && fresh.retry_at.getTime() > now)) continue;
        const lastEnd = fresh.last_window_end?.getTime() ?? null;
        const due = dueWindows(lastEnd, now, plan.stepMs, plan.delayMs, maxCatchup);
        if (due.ends.length === 0) continue;
        const range = { from: due.ends[0] - plan.stepMs, to: due.ends[due.ends.length - 1] };
        if (due.skipped > 0) {
          this.logger.warn(`pipeline ${row.id} (${row.name}): ${due.skipped} window(s) ending in (${toIso(due.skippedFrom!)}, ${toIso(due.skippedTo!)}] were missed and are skipped (PIPELINE_MAX_CATCHUP_WINDOWS); POST /api/v1/pipelines/${row.id}/run?from=…&to=… replays them`);
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
          if (r.error.getStatus() !== 409) await this.repo.backOff(row.id, now + backoffMs(plan.stepMs, fresh.failures + 1));
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

  private async check(body: unknown): Promise<ParsedPipeline> {
    const parsed = parsePipeline(body, this.limits);
    const out = parsed.definition.output;
    if (out.destination === 'webhook') out.url = await this.webhooks.assertSafeUrl(out.url, 'output.url');
    return parsed;
  }

  private async find(id: string): Promise<PipelineRow> {
    const row = /^\d{1,15}$/.test(id) ? await this.repo.get(Number(id)) : undefined;
    if (!row) throw notFound(`No pipeline ${id}`, { pipeline_id: id });
    return row;
  }

  /** The plan of a stored definition, parsed once per version. */
  private planOf(row: PipelineRow): PipelinePlan {
    const cached = this.plans.get(Number(row.id));
    if (cached && cached.version === row.version) return cached.plan;
    const plan = parsePipeline(row.definition, this.limits).plan;
    this.plans.set(Number(row.id), { version: row.version, plan });
    return plan;
  }

  private planOrNull(row: PipelineRow): PipelinePlan | null {
    try {
      return this.planOf(row);
    } catch {
      return null;
    }
  }

  private wake(): void {
    this.nextDueAt = 0;
    this.jobs.reschedule('pipelines');
  }

  private range(plan: PipelinePlan, input: RangeInput, now: number): { from: number; to: number } {
    const given = (v: unknown) => v !== undefined && v !== '';
    const range = given(input.from) || given(input.to) ? parseRange(input, now) : lastWindow(now, plan.stepMs, plan.windowMs);
    const n = countWindows(range.from, range.to, plan.stepMs, now);
    const max = this.config.pipelines.maxWindows;
    if (n > max) {
      throw invalidQuery('from', `${toIso(range.from)} to ${toIso(range.to)} holds ${n} windows of ${formatDuration(plan.stepMs)}, more than ${max} (PIPELINE_MAX_WINDOWS); narrow the range`, {
        windows: n,
        max_windows: max,
      });
    }
    return range;
  }

  /** Aggregates in PostgreSQL, then runs the row stages: what the windows produce. */
  private async evaluate(plan: PipelinePlan, ends: number[]): Promise<Execution> {
    if (ends.length === 0) return assemble(plan, ends, []);
    const maxSeries = this.config.query.maxSeries;
    const ids = await this.repo.seriesIds(plan, maxSeries);
    if (ids.length > maxSeries) {
      const at = plan.definition.pipeline.findIndex((s) => s.operation === 'filter');
      throw fieldErrors([{ field: at >= 0 ? `pipeline[${at}].params` : 'pipeline', message: `the filter matches more than ${maxSeries} series (QUERY_MAX_SERIES); narrow it by metrics, sources or tags` }]);
    }
    const maxRows = this.config.pipelines.maxRows;
    // A row holds one cell per metric: bound the cells read before assembling rows.
    const maxCells = maxRows * Math.max(1, plan.metrics?.length ?? 10);
    // Tumbling windows of functions a rollup answers exactly read rollup tiers where the query planner would.
    let segments: Segment[] | undefined;
    if (plan.stepMs === plan.windowMs && plan.functions.every((f) => ROLLUP_AGGREGATIONS.has(f))) {
      const from = ends[0] - plan.windowMs, to = ends[ends.length - 1];
      const state = this.database.info.flavour === 'postgresql' ? await this.queries.rollupState(ids, from, to) : { materialisedUntil: Infinity };
      segments = planSegments(from, to, plan.windowMs, 'avg', state);
    }
    const tier = segments && coarsestTier(segments);
    const cells = await this.repo.aggregate({ seriesIds: ids, windowMs: plan.windowMs, stepMs: plan.stepMs, ends, functions: plan.functions, groupBy: plan.groupBy, limit: maxCells, segments: tier ? segments : undefined });
    const exec = cells.length > maxCells ? undefined : assemble(plan, ends, cells);
    if (!exec || exec.rowCount > maxRows) {
      throw new ApiError(422, 'UNPROCESSABLE_ENTITY', `The pipeline produces more than ${maxRows} rows over this range (PIPELINE_MAX_ROWS); narrow the range or the filter`, { max_rows: maxRows });
    }
    return { ...exec, rollup: tier?.label ?? null };
  }

  private async preview(plan: PipelinePlan, input: RangeInput, pipeline: { id: number; name: string; version: number } | null) {
    const now = this.clock();
    const range = this.range(plan, input, now);
    const ends = windowEnds(range.from, range.to, plan.stepMs, now);
    const exec = await this.evaluate(plan, ends);
    const out = plan.definition.output;
    const derived = derivedPoints(plan, exec);
    const byStart = out.destination === 'metric' ? pointsByStart(derived.points) : undefined;
    let output: Record<string, unknown>;
    if (out.destination === 'metric') {
      output = { destination: 'metric', metric: out.metric, source: out.source ?? derivedSource(plan), column: out.column, points: derived.points.length, series: seriesCount(derived.points), skipped_nulls: derived.skippedNulls };
    } else if (out.destination === 'webhook') {
      output = { destination: 'webhook', url: out.url, deliveries: Math.ceil(exec.rowCount / ROWS_PER_DELIVERY), rows: exec.rowCount };
    } else output = { destination: 'none' };
    return {
      dry_run: true,
      pipeline,
      from: toIso(range.from),
      to: toIso(range.to),
      window: formatDuration(plan.windowMs),
      every: formatDuration(plan.stepMs),
      columns: exec.columns,
      rollup: exec.rollup ?? null,
      total_windows: exec.windows.length,
      total_rows: exec.rowCount,
      windows: exec.windows.map((w) => windowJson(w, exec, plan, byStart)),
      output,
    };
  }

  /**
   * One run: evaluate, deliver, record. Never throws for a failed run: the error comes back with it.
   * The webhook parts, the run record and (scheduled) the watermark move commit in one transaction:
   * a run either queued all its parts and moved past its windows, or queued none and stays due, so
   * a retry neither sends a part twice nor loses one. Derived points are written before (an
   * idempotent upsert: a retry rewrites the same points).
   */
  private async perform(row: PipelineRow, plan: PipelinePlan, ends: number[], range: { from: number; to: number }, opts: RunOptions) {
    const startedAt = Date.now();
    let exec: Execution | undefined;
    let output: Record<string, unknown> = { destination: plan.definition.output.destination };
    let windowsJson: unknown[] = [];
    let run: RunRow | undefined;
    let error: ApiError | undefined;
    const skipped = opts.skipped && { skipped: { windows: opts.skipped.windows, from: toIso(opts.skipped.from), to: toIso(opts.skipped.to) } };
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
      const committed = await this.commit(row.id, staged.notifications, opts.watermark, (deliveries) => record('ok', staged.output(deliveries)));
      run = committed.run;
      output = committed.output;
      const byStart = staged.points ? pointsByStart(staged.points) : undefined;
      windowsJson = exec.windows.map((w) => windowJson(w, exec!, plan, byStart));
    } catch (err) {
      error = toApiError(err);
      if (error.getStatus() >= 500) this.logger.warn(`pipeline ${row.id} (${row.name}) ${opts.trigger} run failed: ${(err as Error)?.message ?? err}`);
      output = { ...output, ...skipped };
      run = await this.repo.insertRun(record('failed', output)).catch((e: unknown) => {
        this.logger.warn(`pipeline ${row.id}: the run could not be recorded: ${(e as Error).message}`);
        return undefined;
      });
    }
    return { run, exec, output, windowsJson, error };
  }

  /** In one transaction: queue the webhook parts, move the watermark (scheduled runs), record the run. */
  private async commit(pipelineId: number, notifications: Notification[], watermark: RunOptions['watermark'], record: (deliveries: number[]) => RunRecord) {
    const committed = await this.database.generalTransaction(async (c) => {
      // First: its row lock orders concurrent runs of this pipeline until COMMIT.
      if (watermark && !(await this.repo.advance(pipelineId, watermark.from, watermark.to, c))) {
        throw new ApiError(409, 'CONFLICT', `The watermark of pipeline ${pipelineId} moved during the run (another run covered these windows); nothing was delivered`);
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
  private async stage(row: PipelineRow, plan: PipelinePlan, exec: Execution, trigger: Trigger, range: { from: number; to: number }) {
    const out = plan.definition.output;
    if (out.destination === 'metric') {
      const { points, skippedNulls } = derivedPoints(plan, exec);
      for (const batch of toBatches(points, out.unit, POINTS_PER_WRITE)) await this.writer.write(batch, 'pipeline');
      const output = { destination: 'metric', metric: out.metric, source: out.source ?? derivedSource(plan), column: out.column, points_written: points.length, series: seriesCount(points), skipped_nulls: skippedNulls };
      return { points, notifications: [], output: () => output };
    }
    if (out.destination === 'webhook') {
      const rows = exec.windows.flatMap((w) => w.rows.map((r) => rowJson(r, plan.windowMs, exec.columns)));
      const parts = Math.ceil(rows.length / ROWS_PER_DELIVERY);
      const notifications: Notification[] = [];
      for (let i = 0; i < parts; i++) {
        notifications.push({
          subject: `pipeline:${row.id}`,
          event: 'pipeline.output',
          url: out.url,
          secret: row.webhook_secret,
          payload: {
            pipeline: { id: Number(row.id), name: row.name, version: row.version },
            trigger,
            from: toIso(exec.windows.length ? exec.windows[0].start : range.from),
            to: toIso(exec.windows.length ? exec.windows[exec.windows.length - 1].end : range.to),
            window: formatDuration(plan.windowMs),
            columns: exec.columns,
            rows: rows.slice(i * ROWS_PER_DELIVERY, (i + 1) * ROWS_PER_DELIVERY),
            part: i + 1,
            parts,
          },
        });
      }
      return { points: undefined, notifications, output: (deliveries: number[]) => ({ destination: 'webhook', url: out.url, deliveries }) };
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

  private async view(row: PipelineRow, plan: PipelinePlan | null, last?: RunRow) {
    const def = row.definition;
    const lastEnd = row.last_window_end?.getTime() ?? null;
    let nextWindowEnd: string | null = null;
    if (plan && def.schedule && row.enabled) {
      const due = dueWindows(lastEnd, this.clock(), plan.stepMs, plan.delayMs, this.config.pipelines.maxCatchupWindows);
      nextWindowEnd = toIso(due.ends.length ? due.ends[0] : due.nextDueAt - plan.delayMs);
    }
    return {
      id: Number(row.id),
      name: row.name,
      description: row.description,
      enabled: row.enabled,
      pipeline: def.pipeline,
      output: def.output,
      schedule: def.schedule,
      version: row.version,
      created_at: row.created_at.toISOString(),
      updated_at: row.updated_at.toISOString(),
      columns: plan?.columns ?? null,
      ...(def.output.destination === 'webhook' ? { webhook_signed: Boolean(row.webhook_secret) } : {}),
      state: {
        last_window_end: row.last_window_end?.toISOString() ?? null,
        next_window_end: nextWindowEnd,
        failures: row.failures,
        retry_at: row.retry_at?.toISOString() ?? null,
        valid: plan !== null,
      },
      last_run: last ? this.runJson(last, new Map()) : null,
    };
  }

  private async runView(run: RunRow, row: PipelineRow) {
    return this.runJson(run, await this.deliveryStatuses(row, [run]));
  }

  /** Current state of the webhook deliveries of these runs (delivery is asynchronous and retried). */
  private async deliveryStatuses(row: PipelineRow, runs: RunRow[]) {
    const map = new Map<number, { id: number; status: string; attempts: number; response_status: number | null; last_error: string | null }>();
    if (!runs.some((r) => Array.isArray(r.output.deliveries) && r.output.deliveries.length > 0)) return map;
    for (const d of await this.webhooks.list({ subject: `pipeline:${row.id}`, limit: 1000 })) {
      map.set(Number(d.id), { id: Number(d.id), status: d.status, attempts: d.attempts, response_status: d.response_status, last_error: d.last_error });
    }
    return map;
  }

  private runJson(r: RunRow, deliveries: Map<number, unknown>) {
    let output: Record<string, unknown> = r.output;
    if (Array.isArray(r.output.deliveries)) {
      const list = (r.output.deliveries as number[]).map((id) => deliveries.get(id) ?? { id, status: 'unknown' }) as Array<{ status: string }>;
      const statuses = new Set(list.map((d) => d.status));
      const delivery =
        list.length === 0 ? 'nothing to send'
        : statuses.has('failed') || statuses.has('refused') ? 'failed'
        : statuses.has('pending') ? 'pending'
        : statuses.has('unknown') ? 'unknown'
        : 'delivered';
      output = { ...r.output, deliveries: list, delivery };
    }
    return {
      id: Number(r.id),
      pipeline_id: Number(r.pipeline_id),
      pipeline_version: r.pipeline_version,
      trigger: r.trigger,
      status: r.status,
      started_at: r.started_at.toISOString(),
      finished_at: r.finished_at.toISOString(),
      duration_ms: r.duration_ms,
      from: r.range_from?.toISOString() ?? null,
      to: r.range_to?.toISOString() ?? null,
      windows: r.window_count,
      rows: r.row_count,
      skipped_windows: r.skipped_windows,
      output,
      error: r.error,
      instance: r.instance,
    };
  }
}

/** The system-monitor client's pipeline STATUS report, which a trailing slash brings to the create route. */
export function isStatusReport(body: unknown): boolean {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && !('pipeline' in body) && 'pipeline_type' in body && 'status' in body;
}

const newSecret = () => `whsec_${randomBytes(24).toString('base64url')}`;

/** Doubling back-off after failed scheduled runs, from one step up to an hour. */
export const backoffMs = (stepMs: number, failures: number) => Math.min(MAX_BACKOFF_MS, Math.max(5_000, stepMs) * 2 ** Math.min(failures - 1, 20));

const nameConflict = (name: string) => new ApiError(409, 'CONFLICT', `A pipeline named ${name} already exists`, { field: 'name', name });

/** A unique violation that slipped past the check (two saves of one name at once) is the same 409. */
function uniqueName(err: unknown, name: string): unknown {
  return (err as { code?: string }).code === '23505' ? nameConflict(name) : err;
}

function withRun(err: ApiError, run: RunRow | undefined): ApiError {
  if (!run) return err;
  return new ApiError(err.getStatus(), err.code, err.message, { ...(err.details ?? {}), run_id: Number(run.id) }, err.retryAfter);
}

/** How many series the points go to. */
function seriesCount(points: DerivedPoint[]): number {
  return new Set(points.map((p) => `${p.source}\u0000${JSON.stringify(p.tags)}`)).size;
}
