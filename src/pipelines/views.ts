import { formatDuration, toIso } from '../common/time.js';
import type { PipelinePlan } from './definition.js';
import { Derived, DerivedPoint, derivedSource, Execution, pointsByStart, WindowResult } from './execute.js';
import type { Value } from './formula.js';
import type { PipelineRow, RunRow } from './pipelines.repository.js';
import type { Row } from './stages.js';

/**
 * What the pipeline routes answer and what a webhook delivery carries: pure functions from rows,
 * plans and executions to JSON. No NestJS, no database.
 */

/** Rows per webhook delivery: a run with more sends several parts. */
export const ROWS_PER_DELIVERY = 1_000;

/** A webhook delivery of a run, as the run history shows it (delivery is asynchronous and retried). */
export interface DeliveryStatus {
  id: number;
  status: string;
  attempts: number;
  response_status: number | null;
  last_error: string | null;
}

/** A saved pipeline: its definition, schedule state and last run. `plan` null: the stored definition no longer validates. */
export function pipelineView(row: PipelineRow, plan: PipelinePlan | null, nextWindowEnd: string | null, last?: RunRow) {
  const def = row.definition;
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
    last_run: last ? runView(last, new Map()) : null,
  };
}

/** A recorded run; webhook deliveries with their current status and an overall `delivery`. */
export function runView(r: RunRow, deliveries: ReadonlyMap<number, unknown>) {
  let output: Record<string, unknown> = r.output;
  if (Array.isArray(r.output.deliveries)) {
    const list = (r.output.deliveries as number[]).map(
      (id) => deliveries.get(id) ?? { id, status: 'unknown' },
    ) as Array<{ status: string }>;
    const statuses = new Set(list.map((d) => d.status));
    const delivery =
      list.length === 0
        ? 'nothing to send'
        : statuses.has('failed') || statuses.has('refused')
          ? 'failed'
          : statuses.has('pending')
            ? 'pending'
            : statuses.has('unknown')
              ? 'unknown'
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

/** A row as JSON: `{window_start, window_end, group, values}`. */
export function rowJson(r: Row, windowMs: number, columns: readonly string[]) {
  const values: Record<string, Value> = Object.create(null);
  columns.forEach((c, i) => (values[c] = r.values[i] ?? null));
  return {
    window_start: new Date(r.start).toISOString(),
    window_end: new Date(r.start + windowMs).toISOString(),
    group: r.group,
    values,
  };
}

/** A window as the API shows it; `points` (by window start) only for `output: metric`. */
export function windowJson(w: WindowResult, exec: Execution, plan: PipelinePlan, points?: Map<number, DerivedPoint[]>) {
  const json: Record<string, unknown> = {
    window_start: toIso(w.start),
    window_end: toIso(w.end),
    rows: w.rows.map((r) => {
      const { group, values } = rowJson(r, plan.windowMs, exec.columns);
      return { group, values };
    }),
  };
  if (points) json.points = (points.get(w.start) ?? []).map(pointJson);
  return json;
}

export const pointJson = (p: DerivedPoint) => ({
  metric: p.metric,
  source: p.source,
  tags: p.tags,
  timestamp: toIso(p.timestamp),
  value: p.value,
});

/** How many series the points go to. */
export function seriesCount(points: DerivedPoint[]): number {
  return new Set(points.map((p) => `${p.source}\u0000${JSON.stringify(p.tags)}`)).size;
}

/** What a dry-run says its output would be: points and series for `metric`, deliveries for `webhook`. */
export function previewOutput(plan: PipelinePlan, exec: Execution, derived: Derived): Record<string, unknown> {
  const out = plan.definition.output;
  if (out.destination === 'metric') {
    return {
      destination: 'metric',
      metric: out.metric,
      source: out.source ?? derivedSource(plan),
      column: out.column,
      points: derived.points.length,
      series: seriesCount(derived.points),
      skipped_nulls: derived.skippedNulls,
      skipped_out_of_range: derived.skippedOutOfRange,
    };
  }
  if (out.destination === 'webhook')
    return {
      destination: 'webhook',
      url: out.url,
      deliveries: Math.ceil(exec.rowCount / ROWS_PER_DELIVERY),
      rows: exec.rowCount,
    };
  return { destination: 'none' };
}

/** The output record of a run that wrote derived points (stored with the run). */
export function metricRunOutput(
  plan: PipelinePlan,
  { points, skippedNulls, skippedOutOfRange }: Derived,
): Record<string, unknown> {
  const out = plan.definition.output;
  if (out.destination !== 'metric') throw new Error('metricRunOutput: not a metric output');
  return {
    destination: 'metric',
    metric: out.metric,
    source: out.source ?? derivedSource(plan),
    column: out.column,
    points_written: points.length,
    series: seriesCount(points),
    skipped_nulls: skippedNulls,
    skipped_out_of_range: skippedOutOfRange,
  };
}

/**
 * The bodies of a run's webhook deliveries: its rows, at most ROWS_PER_DELIVERY per part (none when
 * it has no rows), each part numbered.
 */
export function webhookPayloads(
  pipeline: { id: number; name: string; version: number },
  plan: PipelinePlan,
  exec: Execution,
  trigger: string,
  range: { from: number; to: number },
): Array<Record<string, unknown>> {
  const rows = exec.windows.flatMap((w) => w.rows.map((r) => rowJson(r, plan.windowMs, exec.columns)));
  const parts = Math.ceil(rows.length / ROWS_PER_DELIVERY);
  const payloads: Array<Record<string, unknown>> = [];
  for (let i = 0; i < parts; i++) {
    payloads.push({
      pipeline: { id: Number(pipeline.id), name: pipeline.name, version: pipeline.version },
      trigger,
      from: toIso(exec.windows.length ? exec.windows[0].start : range.from),
      to: toIso(exec.windows.length ? exec.windows[exec.windows.length - 1].end : range.to),
      window: formatDuration(plan.windowMs),
      columns: exec.columns,
      rows: rows.slice(i * ROWS_PER_DELIVERY, (i + 1) * ROWS_PER_DELIVERY),
      part: i + 1,
      parts,
    });
  }
  return payloads;
}

/** The reply of a dry-run: range, windows, columns, rows window by window, and what the output would be. */
export function dryRunView(
  plan: PipelinePlan,
  exec: Execution,
  range: { from: number; to: number },
  pipeline: { id: number; name: string; version: number } | null,
  derived: Derived,
) {
  const byStart = plan.definition.output.destination === 'metric' ? pointsByStart(derived.points) : undefined;
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
    output: previewOutput(plan, exec, derived),
  };
}
