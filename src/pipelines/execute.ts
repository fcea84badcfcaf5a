import { FieldProblem, fieldErrors } from '../common/errors.js';
import { isStorableValue } from '../ingestion/decode.js';
import { PointBatch, PointBatchBuilder } from '../storage/point-batch.js';
import { columnFor, PipelinePlan } from './definition.js';
import type { Value } from './formula.js';
import type { AggregateRow } from './pipelines.repository.js';
import { bindSteps, Group, Row } from './stages.js';

/**
 * From aggregated cells (window × metric × group, computed by PostgreSQL) to what a pipeline emits,
 * window by window. Pure: the run, the dry-run and the scheduler all go through here, so a dry-run
 * shows exactly what a run over the same range delivers.
 */

export interface WindowResult {
  start: number;
  end: number;
  rows: Row[];
}

export interface Execution {
  columns: string[];
  windows: WindowResult[];
  rowCount: number;
  /** The rollup tier that served whole windows (null: raw points only), as the query API reports it. */
  rollup?: string | null;
}

/** The rows of each window after every stage. Windows without rows are listed too. */
export function assemble(plan: PipelinePlan, ends: number[], cells: AggregateRow[]): Execution {
  const fns = plan.functions;
  // Aggregate columns: metric-major (avg_cpu, max_cpu, avg_memory, …); found in the data in discovery mode.
  const metrics = plan.metrics ?? [...new Set(cells.map((c) => c.metric))].sort();
  const base = new Map<string, number>();
  const aggColumns: string[] = [];
  const owner = new Map<string, string>();
  for (const m of metrics) {
    base.set(m, aggColumns.length);
    for (const fn of fns) {
      const c = columnFor(fn, m);
      if (owner.has(c))
        throw fieldErrors(
          [
            {
              field: 'pipeline',
              message: `metrics ${owner.get(c)} and ${m} both give column ${c}; name the metrics in the filter`,
            },
          ],
          'INVALID_REQUEST',
        );
      owner.set(c, m);
      aggColumns.push(c);
    }
  }
  const countAt = fns.indexOf('count');

  const byKey = new Map<string, Row>();
  for (const cell of cells) {
    const groupKey = JSON.stringify(cell.group);
    const key = `${cell.t}\u0000${groupKey}`;
    let row = byKey.get(key);
    if (!row) {
      const group: Record<string, string | null> = Object.create(null);
      plan.groupBy.forEach((k, i) => (group[k] = cell.group[i]));
      const values: Value[] = new Array(aggColumns.length).fill(null);
      // A metric with no point in this window and group counted zero points; its other functions are null.
      if (countAt >= 0) for (const m of metrics) values[base.get(m)! + countAt] = 0;
      row = { start: cell.t, group, groupKey, values };
      byKey.set(key, row);
    }
    const at = base.get(cell.metric);
    if (at === undefined) continue;
    for (let i = 0; i < fns.length; i++) row.values[at + i] = cell.values[i];
  }

  const bound = bindSteps(plan.steps, aggColumns);
  if (bound.problems.length > 0) throw fieldErrors(bound.problems as FieldProblem[]);
  const rows = bound.apply([...byKey.values()]);
  rows.sort((a, b) => a.start - b.start || (a.groupKey < b.groupKey ? -1 : a.groupKey > b.groupKey ? 1 : 0));

  const windows: WindowResult[] = ends.map((end) => ({ start: end - plan.windowMs, end, rows: [] }));
  const at = new Map(windows.map((w, i) => [w.start, i]));
  for (const r of rows) {
    const i = at.get(r.start);
    if (i !== undefined) windows[i].rows.push(r);
  }
  return { columns: bound.columns, windows, rowCount: rows.length };
}

export interface DerivedSeries {
  metric: string;
  source: string;
  tags: Record<string, string>;
}

export interface DerivedPoint extends DerivedSeries {
  timestamp: number;
  value: number;
}

/** The default source of derived series: which pipeline made them. */
export const derivedSource = (plan: PipelinePlan) => `pipeline:${plan.definition.name}`;

/** The points a metric output writes, and the rows it leaves out: a null column, or a value storage refuses. */
export interface Derived {
  points: DerivedPoint[];
  skippedNulls: number;
  /** Values beyond ±MAX_ABS_VALUE (decode.ts): more than rollups can sum, refused at ingest too. */
  skippedOutOfRange: number;
}

/**
 * The points `output: metric` writes: one per row whose output column is not null (and within the
 * stored range), at the window start, in a series named by the output, tagged with the group (plus
 * the output's static tags).
 */
export function derivedPoints(plan: PipelinePlan, exec: Execution): Derived {
  const out = plan.definition.output;
  if (out.destination !== 'metric') return { points: [], skippedNulls: 0, skippedOutOfRange: 0 };
  const col = exec.columns.indexOf(out.column);
  if (col < 0)
    throw fieldErrors([
      {
        field: 'output.column',
        message: `names column ${out.column}, which the pipeline does not produce (it produces ${exec.columns.join(', ')})`,
      },
    ]);
  const source = out.source ?? derivedSource(plan);
  const points: DerivedPoint[] = [];
  let skippedNulls = 0,
    skippedOutOfRange = 0;
  for (const w of exec.windows) {
    for (const r of w.rows) {
      const v = r.values[col];
      if (v === null || v === undefined) skippedNulls++;
      else if (!isStorableValue(v)) skippedOutOfRange++;
      else
        points.push({ metric: out.metric, source, tags: seriesTags(r.group, out.tags), timestamp: r.start, value: v });
    }
  }
  return { points, skippedNulls, skippedOutOfRange };
}

function seriesTags(group: Group, statics: Record<string, string>): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const k of Object.keys(group)) if (group[k] !== null) tags[k] = group[k]!;
  return { ...tags, ...statics };
}

/** Derived points as batches for the one write path, at most `chunk` points each. */
export function toBatches(points: DerivedPoint[], unit: string | null, chunk: number): PointBatch[] {
  const batches: PointBatch[] = [];
  for (let i = 0; i < points.length; i += chunk) {
    const b = new PointBatchBuilder(Math.min(chunk, points.length - i));
    for (const p of points.slice(i, i + chunk))
      b.push(b.addSeries(p.metric, p.source, p.tags, unit), p.timestamp, p.value);
    batches.push(b.build());
  }
  return batches;
}

/** Derived points by window start, for the per-window reply. */
export function pointsByStart(points: DerivedPoint[]): Map<number, DerivedPoint[]> {
  const m = new Map<number, DerivedPoint[]>();
  for (const p of points) {
    const list = m.get(p.timestamp);
    if (list) list.push(p);
    else m.set(p.timestamp, [p]);
  }
  return m;
}
