import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { encodeCopyBinary } from '../src/storage/copy-binary.js';
import { PointBatchBuilder } from '../src/storage/point-batch.js';
import { authHeaders, benchServer, flag, median, request, sleep, startService, withClient } from './lib.js';

/**
 * Analytics speed and memory, end to end over HTTP against the service in its own process:
 *  - POST /metrics/anomalies with isolation_forest over 100,000 and 1,000,000 stored points
 *    (query + analysis + reply; targets < 1 s and < 8 s), median of 5 runs after a warm-up, and
 *    the latency of small ingest requests while the largest analysis runs;
 *  - GET /metrics/export of 1 and 3 million rows as CSV and Parquet: rows/s and the service's RSS
 *    before, at its peak and after, to show that memory does not grow with the number of rows.
 *   make bench BENCH_ARGS=analytics            (--quick: 300,000 points per series)
 */
const QUICK = flag('quick');
const PER_SERIES = QUICK ? 300_000 : 1_000_000;
const SIZES = [100_000, PER_SERIES];
const RUNS = QUICK ? 3 : 5;
const STEP = 1000;
const DAY = 86_400_000;
const T0 = Math.floor(Date.now() / DAY) * DAY - Math.ceil((PER_SERIES * STEP) / DAY) * DAY;
const HOSTS = ['host-1', 'host-2', 'host-3'];
const iso = (ms: number) => new Date(ms).toISOString();

async function load(dbUrl: string): Promise<void> {
  const ids = await withClient(dbUrl, async (c) => {
    await c.query('TRUNCATE series, points, rollup_1m, rollup_5m, rollup_1h, rollup_1d, rollup_invalidations');
    const r = await c.query<{ id: number }>(
      `INSERT INTO series (metric, source, tags, tags_key, unit) SELECT 'bench_cpu', h, jsonb_build_object('dc', 'eu-1', 'host', h),
              jsonb_build_object('dc', 'eu-1', 'host', h)::text, 'percent' FROM unnest($1::text[]) h ORDER BY h RETURNING id`,
      [HOSTS],
    );
    const flavour = (await c.query<{ value: string }>(`SELECT value FROM timescope_meta WHERE key = 'flavour'`)).rows[0]
      ?.value;
    if (flavour === 'postgresql')
      for (let t = T0; t <= T0 + PER_SERIES * STEP; t += DAY)
        await c.query(`SELECT timescope_ensure_partition('points', '1 day', $1)`, [new Date(t)]);
    return r.rows.map((x) => x.id);
  });
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    for (let h = 0; h < HOSTS.length; h++) {
      for (let i = 0; i < PER_SERIES; i += 200_000) {
        const b = new PointBatchBuilder(200_000);
        const s = b.addSeries('bench_cpu', HOSTS[h], {}, null);
        // A slow wave with noise and a spike every ~100,000 points: something to find.
        for (let j = i; j < Math.min(PER_SERIES, i + 200_000); j++)
          b.push(
            s,
            T0 + j * STEP,
            Math.round((50 + 20 * Math.sin(j / 3600) + ((j * 7919) % 1000) / 100 + (j % 99_991 === 0 ? 60 : 0)) * 100) /
              100,
          );
        await new Promise<void>((res, rej) => {
          const stream = c.query(copyFrom('COPY points (time, series_id, value) FROM STDIN (FORMAT binary)'));
          stream.on('error', rej);
          stream.on('finish', () => res());
          stream.end(encodeCopyBinary([{ batch: b.build(), ids: Int32Array.of(ids[h]) }]));
        });
      }
    }
    await c.query('VACUUM ANALYZE points');
  } finally {
    await c.end();
  }
}

/** Streams a GET and counts its bytes, sampling the service's RSS meanwhile. */
function download(
  url: string,
  rss: () => number,
): Promise<{ bytes: number; seconds: number; peak: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let peak = rss();
    const timer = setInterval(() => (peak = Math.max(peak, rss())), 20);
    http
      .get(url, { headers: authHeaders() }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => {
          clearInterval(timer);
          resolve({
            bytes,
            seconds: (performance.now() - t0) / 1000,
            peak: Math.max(peak, rss()),
            status: res.statusCode ?? 0,
          });
        });
      })
      .on('error', (e) => (clearInterval(timer), reject(e)));
  });
}

const server = await benchServer();
const dbUrl = await server.url('timescope_bench_analytics');
const service = await startService({
  DATABASE_URL: dbUrl,
  JOBS_ENABLED: 'false',
  METRICS_RETENTION_DAYS: '0',
  ANOMALY_MAX_POINTS: String(Math.max(1_000_000, PER_SERIES)),
  EXPORT_DIR: join(tmpdir(), `timescope-bench-exports-${process.pid}`),
});
try {
  console.log(`database: ${server.describe}`);
  const t0 = performance.now();
  await load(dbUrl);
  console.log(
    `loaded ${HOSTS.length} series x ${PER_SERIES} points (binary COPY) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  console.log('\nanomalies, isolation_forest, one series, end to end (HTTP request to the whole reply)');
  for (const n of SIZES) {
    const body = Buffer.from(
      JSON.stringify({
        metric: 'bench_cpu',
        source: 'host-1',
        algorithm: 'isolation_forest',
        from: iso(T0 + (PER_SERIES - n) * STEP),
        to: iso(T0 + PER_SERIES * STEP),
      }),
    );
    const wall: number[] = [];
    let found = 0;
    for (let r = 0; r <= RUNS; r++) {
      const a = performance.now();
      const res = await request(`${service.url}/api/v1/metrics/anomalies`, 'POST', body);
      const ms = performance.now() - a;
      const json = JSON.parse(res.body);
      if (res.status !== 200 || json.points_analyzed !== n) throw new Error(`${res.status} ${res.body.slice(0, 300)}`);
      found = json.total_anomalies;
      if (r > 0) wall.push(ms); // the first run warms up
    }
    console.log(
      `  ${String(n).padStart(9)} points: median ${median(wall).toFixed(0)} ms (runs ${wall.map((x) => x.toFixed(0)).join(', ')}), ${found} anomalies; target < ${n <= 100_000 ? 1000 : 8000} ms`,
    );
  }
  {
    // While the largest analysis runs (in a worker thread), small ingest requests keep being answered.
    const n = SIZES[SIZES.length - 1];
    const body = Buffer.from(
      JSON.stringify({
        metric: 'bench_cpu',
        source: 'host-1',
        algorithm: 'isolation_forest',
        from: iso(T0 + (PER_SERIES - n) * STEP),
        to: iso(T0 + PER_SERIES * STEP),
      }),
    );
    const latencies: number[] = [];
    let done = false;
    const analysis = request(`${service.url}/api/v1/metrics/anomalies`, 'POST', body).finally(() => (done = true));
    for (let k = 0; !done; k++) {
      const a = performance.now();
      const r = await request(
        `${service.url}/api/v1/metrics`,
        'POST',
        Buffer.from(JSON.stringify({ source: 'probe', metrics: [{ name: 'probe', value: k }] })),
      );
      if (r.status !== 200) throw new Error(`ingest during analysis: ${r.status} ${r.body}`);
      latencies.push(performance.now() - a);
      await sleep(20);
    }
    await analysis;
    console.log(
      `  ingest while analysing ${n} points: ${latencies.length} requests, median ${median(latencies).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`,
    );
  }

  console.log("\nexport, streamed over HTTP; the service's RSS");
  for (const format of ['csv', 'parquet']) {
    for (const hosts of [['host-1'], HOSTS]) {
      await sleep(500);
      const before = service.rssMb();
      const filter = hosts.length === 1 ? `&source=${hosts[0]}` : '';
      const r = await download(
        `${service.url}/api/v1/metrics/export?format=${format}&metric=bench_cpu${filter}&from=${iso(T0)}&to=${iso(T0 + PER_SERIES * STEP)}`,
        () => service.rssMb(),
      );
      if (r.status !== 200) throw new Error(`export ${r.status}`);
      await sleep(500);
      const rows = hosts.length * PER_SERIES;
      console.log(
        `  ${format.padEnd(7)} ${String(rows).padStart(9)} rows: ${r.seconds.toFixed(1)} s (${Math.round(rows / r.seconds)} rows/s, ${(r.bytes / 1048576).toFixed(0)} MiB); ` +
          `RSS ${before.toFixed(0)} MiB before, peak ${r.peak.toFixed(0)} MiB (+${(r.peak - before).toFixed(0)}), ${service.rssMb().toFixed(0)} MiB after`,
      );
    }
  }
} finally {
  await service.stop();
  await server.stop();
}
