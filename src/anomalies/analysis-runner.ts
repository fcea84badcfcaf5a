import { Worker } from 'node:worker_threads';
import { Analysis, analyseSeries, AnalysisOptions } from './analyse.js';
import type { SeriesInput } from './detector.js';

/**
 * Where an analysis runs. Small ones inline (a worker costs tens of milliseconds to start); from
 * `workerMinPoints` on, in a worker thread of its own, so the event loop keeps serving ingest and
 * queries meanwhile. At most `maxWorkers` at once; more wait their turn.
 */
export class AnalysisRunner {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(
    private readonly workerMinPoints: number,
    private readonly maxWorkers: number,
  ) {}

  async run(series: SeriesInput[], opts: AnalysisOptions): Promise<Analysis[]> {
    const points = series.reduce((n, s) => n + s.values.length, 0);
    if (points < this.workerMinPoints) return series.map((s) => analyseSeries(s, opts));
    if (this.running >= this.maxWorkers) await new Promise<void>((r) => this.queue.push(r));
    else this.running++;
    try {
      return await inWorker(series, opts);
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

function inWorker(series: SeriesInput[], opts: AnalysisOptions): Promise<Analysis[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./analysis.worker.js', import.meta.url));
    const done = (fn: () => void) => {
      fn();
      void worker.terminate();
    };
    worker.once('message', (m: { ok: boolean; results?: Analysis[]; error?: string }) =>
      done(() => (m.ok ? resolve(m.results!) : reject(new Error(`anomaly analysis failed: ${m.error}`)))),
    );
    worker.once('error', (err) => done(() => reject(err)));
    worker.once('exit', (code) => reject(new Error(`anomaly analysis worker exited with code ${code}`)));
    // The arrays move to the worker (no copy); the caller does not need them afterwards.
    worker.postMessage({ series, opts }, series.flatMap((s) => [s.times.buffer, s.values.buffer]) as ArrayBuffer[]);
  });
}
