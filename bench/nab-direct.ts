import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALGORITHMS, Algorithm } from '../src/anomalies/detectors.js';
import { analyseSeries } from '../src/anomalies/analyse.js';
import { loadNab, scoreResults } from './nab-data.js';

/**
 * A tuning aid, not a benchmark of the service: runs the detectors in-process on the NAB files
 * (no database, no HTTP) and scores them the way bench/nab.bench.ts does. Seconds instead of a minute.
 *   node dist/bench/nab-direct.js [algorithm ...] [--sensitivity=0.5] [--seeds=N] [--verbose]
 * `--seeds=N` scores seeds 1..N as well as the default 42 and prints the spread of the standard
 * score: the forest's score on 13 files moves by several points with the seed alone, so compare
 * changes to it on the spread, not on one seed.
 */
const args = process.argv.slice(2);
const algos = args.filter((a) => !a.startsWith('--')) as Algorithm[];
const sensitivity = Number(args.find((a) => a.startsWith('--sensitivity='))?.split('=')[1] ?? 0.5);
const verbose = args.includes('--verbose');
const seeds = Number(args.find((a) => a.startsWith('--seeds='))?.split('=')[1] ?? 0);
const files = loadNab();

/** Runs one algorithm with one seed over every file and scores its flags. */
async function score(algorithm: Algorithm, seed: number, log: boolean) {
  const out = join(tmpdir(), `nab-direct-${process.pid}-${algorithm}-${seed}`);
  rmSync(out, { recursive: true, force: true });
  for (const f of files) {
    const series = { times: f.times, values: f.values };
    const a = analyseSeries(series, { algorithm, sensitivity, seed, direction: 'both' });
    mkdirSync(join(out, f.category), { recursive: true });
    writeFileSync(join(out, f.category, `${f.name}.json`), JSON.stringify(a.anomalies.map((x) => x.timestamp)));
    if (log) console.log(`${algorithm} ${f.key}: ${a.anomalies.length} episodes ${JSON.stringify(a.used)}`);
  }
  const s = await scoreResults(out);
  rmSync(out, { recursive: true, force: true });
  return s;
}

for (const algorithm of algos.length ? algos : ALGORITHMS) {
  const t0 = performance.now();
  const s = await score(algorithm, 42, verbose);
  const ms = performance.now() - t0;
  console.log(
    `${algorithm.padEnd(17)} NAB standard ${s.standard.toFixed(1).padStart(6)}  low-FP ${s.lowFP.toFixed(1).padStart(6)}  low-FN ${s.lowFN.toFixed(1).padStart(6)}  TP ${s.tp} FN ${s.fn} FP ${s.fp}  (${ms.toFixed(0)} ms)`,
  );
  if (verbose)
    for (const p of s.perFile)
      console.log(`   ${p.file.padEnd(58)} TP ${p.tp} FN ${p.fn} FP ${p.fp}  ${p.nabStandard?.toFixed(1)}`);
  if (seeds > 0) {
    const all: number[] = [];
    for (let seed = 1; seed <= seeds; seed++) all.push((await score(algorithm, seed, false)).standard);
    all.sort((a, b) => a - b);
    const q = (p: number) => all[Math.min(all.length - 1, Math.floor(p * all.length))].toFixed(1);
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    console.log(
      `${''.padEnd(17)} seeds 1-${seeds}: standard mean ${mean.toFixed(1)}, median ${q(0.5)}, min ${all[0].toFixed(1)}, max ${all[all.length - 1].toFixed(1)}`,
    );
  }
}
