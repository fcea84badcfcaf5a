import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The NAB development set beside the repository (`../shared/datasets/nab`), read as Timescope
 * stores it: timestamps are UTC, one point per timestamp (the last row wins, as a retried write
 * would), in time order.
 */

/** The repository root, from dist/bench/*.js or bench/*.ts alike. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

/**
 * The shared folder (datasets, tools): `SHARED_DIR` if set, else the nearest `shared/` above the
 * repository (`../shared` beside a checkout, `../../shared` from a worktree under `wt/`).
 */
export function sharedDir(): string {
  if (process.env.SHARED_DIR) return resolve(process.env.SHARED_DIR);
  let dir = repoRoot();
  for (;;) {
    const up = dirname(dir);
    if (up === dir) return resolve(repoRoot(), '..', 'shared');
    if (existsSync(join(up, 'shared', 'datasets', 'nab'))) return join(up, 'shared');
    dir = up;
  }
}
export const nabDir = () => join(sharedDir(), 'datasets', 'nab');
export const nabScorer = () => join(sharedDir(), 'tools', 'nab-score.mjs');

export interface NabFile {
  /** `realKnownCause/nyc_taxi.csv` */
  key: string;
  category: string;
  name: string;
  times: Float64Array;
  values: Float64Array;
}

export function parseNabTime(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s.trim());
  if (!m) throw new Error(`bad NAB timestamp ${s}`);
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

export function loadNab(): NabFile[] {
  const labels = JSON.parse(readFileSync(join(nabDir(), 'labels.json'), 'utf8')) as Record<string, unknown>;
  return Object.keys(labels)
    .sort()
    .map((key) => {
      const byTime = new Map<number, number>();
      const lines = readFileSync(join(nabDir(), key), 'utf8').split(/\r?\n/).slice(1);
      for (const line of lines) {
        if (!line.trim()) continue;
        const [t, v] = line.split(',');
        byTime.set(parseNabTime(t), Number(v));
      }
      const ts = [...byTime.keys()].sort((a, b) => a - b);
      const [category, file] = key.split('/');
      return {
        key,
        category,
        name: file.replace(/\.csv$/, ''),
        times: Float64Array.from(ts),
        values: Float64Array.from(ts, (t) => byTime.get(t)!),
      };
    });
}

/** Scores a results folder with the shared NAB scorer as a library (the same code as its CLI). */
export async function scoreResults(resultsDir: string): Promise<{
  standard: number;
  lowFP: number;
  lowFN: number;
  tp: number;
  fn: number;
  fp: number;
  perFile: Array<{ file: string; tp: number; fn: number; fp: number; nabStandard: number }>;
}> {
  const scorer = await import(pathToFileURL(nabScorer()).href);
  const files = scorer.loadCorpus({
    resultsDir,
    labelsPath: join(nabDir(), 'labels.json'),
    dataDir: nabDir(),
    asFlags: true,
    strict: true,
  });
  const thresholds = Object.fromEntries(Object.keys(scorer.PROFILES).map((p: string) => [p, 1]));
  const report = scorer.evaluate(files, { thresholds });
  return {
    standard: report.overall.nabStandard,
    lowFP: report.overall.nabLowFP,
    lowFN: report.overall.nabLowFN,
    tp: report.overall.tp,
    fn: report.overall.fn,
    fp: report.overall.fp,
    perFile: report.perFile,
  };
}
