import { analyseSeries } from '../src/anomalies/analyse.js';
import { ALGORITHMS } from '../src/anomalies/detectors.js';
import { prng } from '../src/anomalies/robust.js';

/**
 * A tuning aid beside nab-direct.ts, in-process: how often each detector reports an anomaly on
 * plain noise, where it should report none. Per length, `--seeds` series of Gaussian noise
 * (50 ± 2, quantised to 0.01 like a real reading, minute points); prints how many of them got at
 * least one anomaly at `--sensitivity`.
 *   node dist/bench/noise-direct.js [--lengths=10,20,...] [--seeds=200] [--sensitivity=0.5]
 */
const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const lengths = arg('lengths', '10,20,30,60,64,120,200,400,1000,4000').split(',').map(Number);
const seeds = Number(arg('seeds', '200'));
const sensitivity = Number(arg('sensitivity', '0.5'));
const gaussian = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

console.log(['points', ...ALGORITHMS].join('\t'));
for (const n of lengths) {
  const row: string[] = [String(n)];
  for (const algorithm of ALGORITHMS) {
    let hit = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const r = prng(seed * 7919 + n);
      const times = Float64Array.from({ length: n }, (_, i) => 1.7e12 + i * 60_000);
      const values = Float64Array.from({ length: n }, () => Math.round((50 + 2 * gaussian(r)) * 100) / 100);
      const a = analyseSeries({ times, values }, { algorithm, sensitivity, seed: 42, direction: 'both' });
      if (a.anomalies.length > 0) hit++;
    }
    row.push(`${hit}/${seeds}`);
  }
  console.log(row.join('\t'));
}
