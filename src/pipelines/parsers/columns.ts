import { AggFunction, columnFor } from '../definition.js';
import { defines, references, Step } from '../stages.js';
import { METRIC_NAME, Problems } from './common.js';

/**
 * Metrics named by references to aggregate columns that no earlier stage defines, in order of use
 * (`avg_cpu` in a formula → metric `cpu`): how the reference example works without `metrics`.
 */
export function inferMetrics(
  steps: readonly Step[],
  functions: readonly AggFunction[],
  outputColumn: string | undefined,
): string[] {
  const defined = new Set<string>();
  const metrics: string[] = [];
  const consider = (name: string) => {
    if (defined.has(name)) return;
    const i = name.indexOf('_');
    if (i <= 0) return;
    const fn = name.slice(0, i),
      metric = name.slice(i + 1);
    if ((functions as readonly string[]).includes(fn) && METRIC_NAME.test(metric) && !metrics.includes(metric))
      metrics.push(metric);
  };
  for (const step of steps) {
    for (const r of references(step)) consider(r.name);
    for (const d of defines(step)) defined.add(d);
  }
  if (outputColumn) consider(outputColumn);
  return metrics;
}

/** The aggregate's columns, metric-major (`avg_cpu, max_cpu, avg_memory, …`); two metrics giving one column is a problem. */
export function aggregateColumns(
  metrics: readonly string[],
  functions: readonly AggFunction[],
  problems: Problems,
): string[] {
  const columns: string[] = [];
  const owner = new Map<string, string>();
  for (const m of metrics) {
    for (const fn of functions) {
      const c = columnFor(fn, m);
      if (owner.has(c) && owner.get(c) !== m)
        problems.add('pipeline', `metrics ${owner.get(c)} and ${m} both give column ${c}`);
      owner.set(c, m);
      if (!columns.includes(c)) columns.push(c);
    }
  }
  return columns;
}
