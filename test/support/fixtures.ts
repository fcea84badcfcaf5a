import type { TestApp } from './app.js';

/** A known point: what the tests store and what the independent computation reads. */
export interface KnownPoint {
  metric: string;
  source: string;
  tags: Record<string, string>;
  t: number;
  v: number;
}

/** Deterministic pseudo-random numbers (the detectors' seeded mulberry32), so every run stores the same values. */
export { prng } from '../../src/anomalies/robust.js';

/** Stores points through the public API, in requests of at most `chunk` points. */
export async function ingest(t: TestApp, points: KnownPoint[], chunk = 5_000): Promise<void> {
  for (let i = 0; i < points.length; i += chunk) {
    const part = points.slice(i, i + chunk);
    const bySource = new Map<string, KnownPoint[]>();
    for (const p of part) {
      const list = bySource.get(p.source);
      if (list) list.push(p);
      else bySource.set(p.source, [p]);
    }
    const body = {
      batches: [...bySource].map(([source, ps]) => ({
        source,
        metrics: ps.map((p) => ({ name: p.metric, value: p.v, tags: p.tags, timestamp: new Date(p.t).toISOString() })),
      })),
    };
    const r = await t.post('/api/v1/metrics/batch', body);
    if (r.status !== 200) throw new Error(`ingest failed: ${r.status} ${r.body}`);
  }
}

export type Agg = 'avg' | 'sum' | 'min' | 'max' | 'count' | 'first' | 'last';

/** The independent computation: bucket [from, to) by `step` from the epoch and aggregate in JS. */
export function expectedBuckets(
  points: KnownPoint[],
  from: number,
  to: number,
  step: number,
  agg: Agg,
): Array<{ t: number; v: number }> {
  const groups = new Map<number, KnownPoint[]>();
  for (const p of points) {
    if (p.t < from || p.t >= to) continue;
    const b = Math.floor(p.t / step) * step;
    const list = groups.get(b);
    if (list) list.push(p);
    else groups.set(b, [p]);
  }
  return [...groups.keys()]
    .sort((a, b) => a - b)
    .map((b) => {
      const ps = groups.get(b)!;
      const vs = ps.map((p) => p.v);
      const byTime = [...ps].sort((x, y) => x.t - y.t || x.source.localeCompare(y.source));
      const v =
        agg === 'avg'
          ? vs.reduce((s, x) => s + x, 0) / vs.length
          : agg === 'sum'
            ? vs.reduce((s, x) => s + x, 0)
            : agg === 'min'
              ? Math.min(...vs)
              : agg === 'max'
                ? Math.max(...vs)
                : agg === 'count'
                  ? vs.length
                  : agg === 'first'
                    ? byTime[0].v
                    : byTime[byTime.length - 1].v;
      return { t: b, v };
    });
}

/** Equal within floating-point summation error. */
export function close(a: number | null, b: number | null, rel = 1e-9): boolean {
  if (a === null || b === null) return a === b;
  return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
}

/** The reference's "Custom Data Pipeline" request body (collector-api.md), fresh each call. */
export function referencePipeline() {
  return {
    name: 'experiment_summary',
    pipeline: [
      { operation: 'filter', params: { tags: { experiment_id: 'exp_001' } } },
      { operation: 'aggregate', params: { window: '5m', functions: ['avg', 'max'] } },
      { operation: 'transform', params: { formula: 'avg_cpu + max_memory' } },
    ],
    output: { destination: 'webhook', url: 'https://your-system.com/webhook' },
  };
}
