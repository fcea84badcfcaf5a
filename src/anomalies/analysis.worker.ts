import { parentPort } from 'node:worker_threads';
import { analyseSeries, AnalysisOptions } from './analyse.js';
import type { SeriesInput } from './detector.js';

/** Runs analyseSeries off the main thread, so a million-point analysis does not stall ingest. */
parentPort!.on('message', (msg: { series: SeriesInput[]; opts: AnalysisOptions }) => {
  try {
    parentPort!.postMessage({ ok: true, results: msg.series.map((s) => analyseSeries(s, msg.opts)) });
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: (err as Error).message });
  }
});
