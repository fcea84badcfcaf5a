import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALGORITHMS } from '../src/anomalies/detectors.js';
import { loadNab, nabDir, nabScorer, repoRoot } from './nab-data.js';
import { benchServer, request, startService, withClient } from './lib.js';

/**
 * Anomaly quality on the NAB development set, end to end: every csv of ../shared/datasets/nab is
 * ingested as one series through the HTTP API, POST /api/v1/metrics/anomalies is called over its
 * whole range once per algorithm (defaults otherwise: sensitivity 0.5), each reply's anomalies are
 * saved as `<out>/<algorithm>/<category>/<name>.json` (the flagged timestamps), and the shared
 * scorer grades them as flags (`nab-score.mjs --as-flags`): what a user of the endpoint gets.
 *   make bench BENCH_ARGS=nab            (out: bench/results/nab)
 */
const out = join(repoRoot(), 'bench', 'results', 'nab');
const files = loadNab();
const server = await benchServer();
const dbUrl = await server.url('timescope_bench_nab');
// NAB's timestamps are from 2013-2015: keep points forever, or ingest would refuse them as too old.
const service = await startService({ DATABASE_URL: dbUrl, JOBS_ENABLED: 'false', METRICS_RETENTION_DAYS: '0' });
const postJson = async (url: string, body: unknown) => {
  const r = await request(url, 'POST', Buffer.from(JSON.stringify(body)));
  return { status: r.status, json: JSON.parse(r.body) };
};
const t = { url: service.url };
const rows: Array<{ algorithm: string; standard: string; lowFP: string; lowFN: string; seconds: string }> = [];
try {
  await withClient(dbUrl, (c) => c.query('TRUNCATE series, points'));
  for (const f of files) {
    for (let i = 0; i < f.times.length; i += 10_000) {
      const metrics = [];
      for (let j = i; j < Math.min(f.times.length, i + 10_000); j++)
        metrics.push({ name: 'nab', value: f.values[j], timestamp: new Date(f.times[j]).toISOString() });
      const r = await postJson(`${t.url}/api/v1/metrics`, { source: f.key, metrics });
      if (r.status !== 200) throw new Error(`ingest ${f.key}: ${r.status} ${JSON.stringify(r.json)}`);
    }
  }
  console.log(`ingested ${files.length} files, ${files.reduce((s, f) => s + f.times.length, 0)} points`);
  rmSync(out, { recursive: true, force: true });
  for (const algorithm of ALGORITHMS) {
    const t0 = performance.now();
    for (const f of files) {
      const body = {
        metric: 'nab',
        source: f.key,
        from: new Date(f.times[0]).toISOString(),
        to: new Date(f.times[f.times.length - 1] + 1).toISOString(),
        algorithm,
      };
      const r = await postJson(`${t.url}/api/v1/metrics/anomalies`, body);
      if (r.status !== 200) throw new Error(`${algorithm} ${f.key}: ${r.status} ${JSON.stringify(r.json)}`);
      mkdirSync(join(out, algorithm, f.category), { recursive: true });
      // The scorer reads scores in [0, 1]; ours are normalised to 1.0 at the boundary, so hand it the flagged timestamps.
      writeFileSync(
        join(out, algorithm, f.category, `${f.name}.json`),
        JSON.stringify(r.json.anomalies.map((a: { timestamp: string }) => a.timestamp)),
      );
    }
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    const args = [
      nabScorer(),
      '--results',
      join(out, algorithm),
      '--labels',
      join(nabDir(), 'labels.json'),
      '--as-flags',
      '--json',
      join(out, `${algorithm}.report.json`),
    ];
    const s = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (s.status !== 0) throw new Error(`nab-score: ${s.stderr}`);
    writeFileSync(join(out, `${algorithm}.txt`), s.stdout);
    const found = Object.fromEntries([...s.stdout.matchAll(/NAB (\S+)\s+(-?[\d.]+)/g)].map((m) => [m[1], m[2]]));
    rows.push({
      algorithm,
      standard: found.standard,
      lowFP: found.reward_low_FP_rate,
      lowFN: found.reward_low_FN_rate,
      seconds,
    });
    console.log(`${algorithm}: NAB standard ${found.standard} (${seconds} s for ${files.length} requests)`);
  }
} finally {
  await service.stop();
  await server.stop();
}
console.log('\nNAB scores (flags as returned; 0 = detect nothing, 100 = every window at its start)');
console.log(
  [
    'algorithm'.padEnd(17),
    'standard'.padStart(9),
    'low FP'.padStart(9),
    'low FN'.padStart(9),
    'time s'.padStart(8),
  ].join(' '),
);
for (const r of rows)
  console.log(
    [
      r.algorithm.padEnd(17),
      r.standard.padStart(9),
      r.lowFP.padStart(9),
      r.lowFN.padStart(9),
      r.seconds.padStart(8),
    ].join(' '),
  );
console.log(`per-file reports: ${out}/<algorithm>.txt`);
