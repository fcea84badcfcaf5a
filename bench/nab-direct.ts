import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALGORITHMS, Algorithm, detectorFor } from '../src/anomalies/detectors.js';
import { describeEpisode, findEpisodes } from '../src/anomalies/episodes.js';
import { loadNab, scoreResults } from './nab-data.js';

/**
 * A tuning aid, not a benchmark of the service: runs the detectors in-process on the NAB files
 * (no database, no HTTP) and scores them the way bench/nab.bench.ts does. Seconds instead of a minute.
 *   node dist/bench/nab-direct.js [algorithm ...] [--sensitivity=0.5] [--verbose]
 */
const args = process.argv.slice(2);
const algos = (args.filter((a) => !a.startsWith('--')) as Algorithm[]);
const sensitivity = Number(args.find((a) => a.startsWith('--sensitivity='))?.split('=')[1] ?? 0.5);
const verbose = args.includes('--verbose');
const files = loadNab();
for (const algorithm of algos.length ? algos : ALGORITHMS) {
  const out = join(tmpdir(), `nab-direct-${process.pid}-${algorithm}`);
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  for (const f of files) {
    const series = { times: f.times, values: f.values };
    const det = detectorFor(algorithm)(series, { sensitivity, seed: 42 });
    const gap = Number(det.used.window ?? 10) * Number(args.find((a) => a.startsWith('--gap='))?.split('=')[1] ?? 1);
    const eps = findEpisodes(series, det, { direction: 'both', gap: Math.max(1, Math.round(gap)), loneScore: Number(args.find((a) => a.startsWith('--lone='))?.split('=')[1] ?? 1) });
    mkdirSync(join(out, f.category), { recursive: true });
    writeFileSync(join(out, f.category, `${f.name}.json`), JSON.stringify(eps.map((e) => describeEpisode(series, det, e).timestamp)));
    if (verbose) console.log(`${algorithm} ${f.key}: ${eps.length} episodes ${JSON.stringify(det.used)}`);
  }
  const ms = performance.now() - t0;
  const s = await scoreResults(out);
  console.log(`${algorithm.padEnd(17)} NAB standard ${s.standard.toFixed(1).padStart(6)}  low-FP ${s.lowFP.toFixed(1).padStart(6)}  low-FN ${s.lowFN.toFixed(1).padStart(6)}  TP ${s.tp} FN ${s.fn} FP ${s.fp}  (${ms.toFixed(0)} ms)`);
  if (verbose) for (const p of s.perFile) console.log(`   ${p.file.padEnd(58)} TP ${p.tp} FN ${p.fn} FP ${p.fp}  ${p.nabStandard?.toFixed(1)}`);
  rmSync(out, { recursive: true, force: true });
}
