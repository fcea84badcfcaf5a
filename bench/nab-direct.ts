import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALGORITHMS, Algorithm } from '../src/anomalies/detectors.js';
import { analyseSeries } from '../src/anomalies/analyse.js';
import { loadNab, scoreResults } from './nab-data.js';

/**
 * A tuning aid, not a benchmark of the service: runs the detectors in-process on the NAB files
 * (no database, no HTTP) and scores them the way bench/nab.bench.ts does. Seconds instead of a minute.
 *   node dist/bench/nab-direct.js [algorithm ...] [--sensitivity=0.5] [--verbose]
 */
const args = process.argv.slice(2);
const algos = args.filter((a) => !a.startsWith('--')) as Algorithm[];
const sensitivity = Number(args.find((a) => a.startsWith('--sensitivity='))?.split('=')[1] ?? 0.5);
const verbose = args.includes('--verbose');
const files = loadNab();
for (const algorithm of algos.length ? algos : ALGORITHMS) {
  const out = join(tmpdir(), `nab-direct-${process.pid}-${algorithm}`);
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  for (const f of files) {
    const series = { times: f.times, values: f.values };
    const a = analyseSeries(series, { algorithm, sensitivity, seed: 42, direction: 'both' });
    mkdirSync(join(out, f.category), { recursive: true });
    writeFileSync(join(out, f.category, `${f.name}.json`), JSON.stringify(a.anomalies.map((x) => x.timestamp)));
    if (verbose) console.log(`${algorithm} ${f.key}: ${a.anomalies.length} episodes ${JSON.stringify(a.used)}`);
  }
  const ms = performance.now() - t0;
  const s = await scoreResults(out);
  console.log(
    `${algorithm.padEnd(17)} NAB standard ${s.standard.toFixed(1).padStart(6)}  low-FP ${s.lowFP.toFixed(1).padStart(6)}  low-FN ${s.lowFN.toFixed(1).padStart(6)}  TP ${s.tp} FN ${s.fn} FP ${s.fp}  (${ms.toFixed(0)} ms)`,
  );
  if (verbose)
    for (const p of s.perFile)
      console.log(`   ${p.file.padEnd(58)} TP ${p.tp} FN ${p.fn} FP ${p.fp}  ${p.nabStandard?.toFixed(1)}`);
  rmSync(out, { recursive: true, force: true });
}
