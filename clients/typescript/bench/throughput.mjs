// Ingest throughput of the client's writer (after `make build`, from the repository root):
//   node clients/typescript/bench/throughput.mjs [baseUrl] [points] [series] [concurrency]
// baseUrl `dry` measures the writer alone (checks, JSON, batching) with a sender that answers at once.
// TIMESCOPE_KEY, when set, is sent as the Bearer key.
import { performance } from 'node:perf_hooks';
import { PointWriter, TimescopeClient } from '../../../dist/clients/typescript/src/index.js';

const [target = 'http://127.0.0.1:8080', pointsArg = '200000', seriesArg = '100', concArg = '1'] =
  process.argv.slice(2);
const N = Number(pointsArg);
const S = Number(seriesArg);
const dry = target === 'dry';
const ok = (n) => Promise.resolve({ status: 'success', metrics_accepted: n, timestamp: '', batch_id: 'dry' });
let retries = 0;
const client = dry
  ? undefined
  : new TimescopeClient({ baseUrl: target, apiKey: process.env.TIMESCOPE_KEY, onRetry: () => retries++ });
const options = { source: 'bench', concurrency: Number(concArg) };
const writer = dry ? new PointWriter(ok, options) : client.writer(options);

// Distinct timestamps per series: one point per series per millisecond step, in the last hour.
const start = Date.now() - 3_600_000;
const tags = Array.from({ length: S }, (_, i) => ({ host: `h${i % 10}`, core: String(i) }));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const s = i % S;
  await writer.write({ name: 'bench_client', value: i, tags: tags[s], timestamp: start + Math.floor(i / S) });
}
await writer.close();
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuUs = cpu.user + cpu.system;
console.log(
  JSON.stringify({
    target: dry ? 'dry (no network)' : target,
    points: N,
    series: S,
    concurrency: Number(concArg),
    batches: writer.stats.batches,
    written: writer.stats.written,
    retries,
    wall_s: Number(wall.toFixed(2)),
    points_per_s: Math.round(N / wall),
    client_cpu_us_per_point: Number((cpuUs / N).toFixed(2)),
  }),
);
