import { PointBatchBuilder } from '../src/storage/point-batch.js';
import { PointWriter } from '../src/storage/point-writer.js';
import { median, postJson, startBenchApp } from './support.js';

/**
 * Analytics speed and memory, end to end over HTTP on a real PostgreSQL:
 *  - POST /metrics/anomalies with isolation_forest over 100,000 and 1,000,000 stored points
 *    (query + analysis + reply; targets: < 1 s and < 8 s), median of several runs;
 *  - GET /metrics/export of 1 and 3 million rows (CSV and Parquet): rows/s and the process's RSS
 *    before, at its peak and after, to show memory stays flat whatever the number of rows.
 *   make bench BENCH_ARGS=analytics            (--quick: 100k/300k points, 300k/900k rows)
 */
const quick = process.argv.includes('--quick');
const PER_SERIES = quick ? 300_000 : 1_000_000;
const SIZES = quick ? [100_000, 300_000] : [100_000, 1_000_000];
const RUNS = quick ? 3 : 5;
const STEP = 1000;
const T0 = Math.floor(Date.now() / 1000) * 1000 - PER_SERIES * STEP;
const iso = (ms: number) => new Date(ms).toISOString();
const mb = (b: number) => (b / 1048576).toFixed(0);

const t = await startBenchApp({ ANOMALY_MAX_POINTS: String(Math.max(1_000_000, PER_SERIES)) });
try {
  const writer = t.app.get(PointWriter);
  const t0 = performance.now();
  for (const host of ['host-1', 'host-2', 'host-3']) {
    for (let i = 0; i < PER_SERIES; i += 50_000) {
      const b = new PointBatchBuilder(50_000);
      const s = b.addSeries('bench_cpu', host, { host, dc: 'eu-1' }, 'percent');
      for (let j = i; j < Math.min(PER_SERIES, i + 50_000); j++) {
        // A daily-ish wave with noise and a few spikes: something to find.
        const v = 50 + 20 * Math.sin(j / 3600) + ((j * 7919) % 1000) / 100 + (j % 99_991 === 0 ? 60 : 0);
        b.push(s, T0 + j * STEP, Math.round(v * 100) / 100);
      }
      await writer.write(b.build());
    }
  }
  console.log(`stored ${3 * PER_SERIES} points (3 series) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  console.log('\nanomalies, isolation_forest, one series, end to end (HTTP request to parsed reply)');
  for (const n of SIZES) {
    const body = { metric: 'bench_cpu', source: 'host-1', algorithm: 'isolation_forest', from: iso(T0 + (PER_SERIES - n) * STEP), to: iso(T0 + PER_SERIES * STEP) };
    const wall: number[] = [], server: number[] = [];
    let found = 0;
    for (let r = 0; r < RUNS + 1; r++) {
      const a = performance.now();
      const res = await postJson(`${t.url}/api/v1/metrics/anomalies`, body);
      const ms = performance.now() - a;
      if (res.status !== 200 || res.json.points_analyzed !== n) throw new Error(`${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
      found = res.json.total_anomalies;
      if (r > 0) (wall.push(ms), server.push(res.json.analysis_time_ms)); // the first run warms up
    }
    console.log(`  ${String(n).padStart(9)} points: median ${median(wall).toFixed(0)} ms end to end (server ${median(server).toFixed(0)} ms; runs ${wall.map((x) => x.toFixed(0)).join(', ')}), ${found} anomalies, target < ${n <= 100_000 ? 1000 : 8000} ms`);
  }

  // While the largest analysis runs (in a worker thread), small ingest requests keep being answered.
  {
    const n = SIZES[SIZES.length - 1];
    const body = { metric: 'bench_cpu', source: 'host-1', algorithm: 'isolation_forest', from: iso(T0 + (PER_SERIES - n) * STEP), to: iso(T0 + PER_SERIES * STEP) };
    const latencies: number[] = [];
    let done = false;
    const analysis = postJson(`${t.url}/api/v1/metrics/anomalies`, body).finally(() => (done = true));
    for (let k = 0; !done; k++) {
      const a = performance.now();
      const r = await postJson(`${t.url}/api/v1/metrics`, { source: 'probe', metrics: [{ name: 'probe', value: k }] });
      if (r.status !== 200) throw new Error(`ingest during analysis: ${r.status}`);
      latencies.push(performance.now() - a);
      await new Promise((r) => setTimeout(r, 20));
    }
    await analysis;
    console.log(`  ingest while analysing ${n} points: ${latencies.length} requests, median ${median(latencies).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`);
  }

  console.log('\nexport, streamed over HTTP; RSS of the whole process (server and the client reading the bytes)');
  for (const format of ['csv', 'parquet']) {
    for (const hosts of [['host-1'], ['host-1', 'host-2', 'host-3']]) {
      global.gc?.();
      await new Promise((r) => setTimeout(r, 200));
      const before = process.memoryUsage().rss;
      const heapBefore = process.memoryUsage().heapUsed;
      let peak = before;
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      const a = performance.now();
      const tags = hosts.length === 1 ? `&source=${hosts[0]}` : '';
      const res = await fetch(`${t.url}/api/v1/metrics/export?format=${format}&metric=bench_cpu${tags}&from=${iso(T0)}&to=${iso(T0 + PER_SERIES * STEP)}`);
      if (res.status !== 200 || !res.body) throw new Error(`export ${res.status}`);
      let bytes = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
      const s = (performance.now() - a) / 1000;
      clearInterval(timer);
      await new Promise((r) => setTimeout(r, 200));
      global.gc?.();
      const after = process.memoryUsage().rss;
      const retained = process.memoryUsage().heapUsed - heapBefore;
      const rows = hosts.length * PER_SERIES;
      console.log(
        `  ${format.padEnd(7)} ${String(rows).padStart(9)} rows: ${s.toFixed(1)} s (${Math.round(rows / s)} rows/s, ${mb(bytes)} MiB); ` +
          `RSS ${mb(before)} MiB before, peak ${mb(peak)} MiB (+${mb(peak - before)}), ${mb(after)} MiB after; JS heap retained after GC ${(retained / 1048576).toFixed(1)} MiB`,
      );
    }
  }
} finally {
  await t.close();
}
