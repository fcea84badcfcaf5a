import { join } from 'node:path';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { encodeCopyBinary } from '../src/storage/copy-binary.js';
import { PointBatchBuilder } from '../src/storage/point-batch.js';
import {
  benchServer,
  flag,
  median,
  option,
  percentile,
  request,
  ROOT,
  startService,
  table,
  withClient,
} from './lib.js';

/**
 * Query latency through the HTTP API on the data set: 30 days of 10 s data; the last
 * day has 1,000 series, the 29 days before it 100 of them (33.7 M points). p50 of 20 runs after
 * warm-up, next to the same questions asked of the raw points in plain SQL in the same run.
 *
 * The data set is loaded once (binary COPY, then VACUUM ANALYZE and a rollup refresh, all timed)
 * into an embedded PostgreSQL kept under data/bench-query, and reused while its shape matches.
 *
 *   make bench BENCH_ARGS="query"   (--quick: 3 days, 100/10 series; --days, --series, --old-series, --runs, --reload)
 */
const QUICK = flag('quick');
const DAYS = option('days', QUICK ? 3 : 30);
const SERIES = option('series', QUICK ? 100 : 1_000);
const OLD_SERIES = option('old-series', QUICK ? 10 : 100);
const RUNS = option('runs', 20);
const STEP = 10_000;
const DAY = 86_400_000;
const SHAPE = `${DAYS}d-${SERIES}-${OLD_SERIES}`;

async function load(dbUrl: string, end: number): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  const ids = await withClient(dbUrl, async (c) => {
    await c.query('TRUNCATE series, points, rollup_1m, rollup_5m, rollup_1h, rollup_1d, rollup_invalidations');
    await c.query('UPDATE rollup_state SET watermark = NULL');
    const r = await c.query<{ id: number }>(
      `INSERT INTO series (metric, source, tags, tags_key, unit, first_seen, last_seen)
       SELECT 'cpu', 'host-' || i, '{}', '{}', 'percent', $1, $2 FROM generate_series(0, $3 - 1) i ORDER BY i RETURNING id`,
      [new Date(end - DAYS * DAY), new Date(end), SERIES],
    );
    for (let d = 0; d <= DAYS; d++)
      await c.query(`SELECT timescope_ensure_partition('points', '1 day', $1)`, [new Date(end - d * DAY)]);
    return r.rows.map((x) => x.id);
  });
  // Chunks of about a million rows: (day, series range) with every point of that day.
  const jobs: Array<{ from: number; to: number; s0: number; s1: number }> = [];
  for (let d = DAYS; d >= 1; d--) {
    const from = end - d * DAY,
      to = from + DAY,
      n = d === 1 ? SERIES : OLD_SERIES;
    const per = Math.max(1, Math.floor(1_000_000 / (DAY / STEP)));
    for (let s0 = 0; s0 < n; s0 += per) jobs.push({ from, to, s0, s1: Math.min(n, s0 + per) });
  }
  let rows = 0;
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    [0, 1].map(async () => {
      const c = new pg.Client({ connectionString: dbUrl });
      await c.connect();
      try {
        while (next < jobs.length) {
          const j = jobs[next++];
          const b = new PointBatchBuilder((j.s1 - j.s0) * (DAY / STEP));
          const seriesIds: number[] = [];
          for (let s = j.s0; s < j.s1; s++) {
            const idx = b.addSeries('cpu', `host-${s}`, {}, null);
            seriesIds[idx] = ids[s];
            for (let t = j.from; t < j.to; t += STEP)
              b.push(idx, t, 50 + 30 * Math.sin(t / 3_600_000 + s) + ((t / STEP) % 7));
          }
          const batch = b.build();
          rows += batch.length;
          await new Promise<void>((res, rej) => {
            const stream = c.query(copyFrom('COPY points (time, series_id, value) FROM STDIN (FORMAT binary)'));
            stream.on('error', rej);
            stream.on('finish', () => res());
            stream.end(encodeCopyBinary([{ batch, ids: Int32Array.from(seriesIds) }]));
          });
          process.stdout.write(`\rloaded ${(rows / 1e6).toFixed(1)} M points`);
        }
      } finally {
        await c.end();
      }
    }),
  );
  timings['load (binary COPY) s'] = (performance.now() - t0) / 1000;
  timings.points = rows;
  console.log('');
  const t1 = performance.now();
  await withClient(dbUrl, (c) => c.query('VACUUM (ANALYZE) points'));
  timings['VACUUM ANALYZE s'] = (performance.now() - t1) / 1000;
  return timings;
}

async function main(): Promise<void> {
  const server = await benchServer(join(ROOT, 'data', 'bench-query'));
  const dbUrl = await server.url('timescope_bench_query');
  console.log(`database: ${server.describe}`);
  const service = await startService({
    DATABASE_URL: dbUrl,
    JOBS_ENABLED: 'false',
    TIMESCALEDB: 'off',
    METRICS_RETENTION_DAYS: '0',
  });
  try {
    await withClient(dbUrl, (c) =>
      c.query(`CREATE TABLE IF NOT EXISTS bench_meta (shape text PRIMARY KEY, end_ms double precision NOT NULL)`),
    );
    let end = await withClient(
      dbUrl,
      async (c) =>
        (await c.query<{ end_ms: number }>(`SELECT end_ms FROM bench_meta WHERE shape = $1`, [SHAPE])).rows[0]?.end_ms,
    );
    if (end === undefined || flag('reload')) {
      end = Math.floor(Date.now() / STEP) * STEP;
      console.log(`loading ${DAYS} days: ${SERIES} series on the last day, ${OLD_SERIES} before`);
      const timings = await load(dbUrl, end);
      await withClient(dbUrl, (c) =>
        c.query(`DELETE FROM bench_meta; INSERT INTO bench_meta VALUES ('${SHAPE}', ${end})`),
      );
      const t0 = performance.now();
      const run = await request(`${service.url}/api/v1/system/jobs/rollup-refresh/run`, 'POST');
      timings['rollup refresh s'] = (performance.now() - t0) / 1000;
      if (run.status !== 200 || JSON.parse(run.body).outcome !== 'ok') throw new Error(`rollup refresh: ${run.body}`);
      await withClient(dbUrl, (c) => c.query('VACUUM (ANALYZE) rollup_1m, rollup_5m, rollup_1h, rollup_1d, series'));
      table([timings]);
    } else {
      console.log(
        `reusing the loaded data set (${SHAPE}, ending ${new Date(end).toISOString()}); --reload to load it again`,
      );
      await request(`${service.url}/api/v1/system/jobs/rollup-refresh/run`, 'POST');
    }
    const iso = (t: number) => new Date(t).toISOString();
    const one = `metric=cpu&source=host-0`;
    const questions = [
      {
        name: `one series, 1 day, 5m avg`,
        qs: `${one}&from=${iso(end - DAY)}&to=${iso(end)}&granularity=5m&aggregation=avg`,
        target: 10,
        sql: raw('avg', 300, `= $1`, end - DAY, end),
        all: false,
      },
      {
        name: `one series, ${DAYS} days, 5m avg`,
        qs: `${one}&from=${iso(end - DAYS * DAY)}&to=${iso(end)}&granularity=5m&aggregation=avg`,
        target: 50,
        sql: raw('avg', 300, `= $1`, end - DAYS * DAY, end),
        all: false,
      },
      {
        name: `one series, ${DAYS} days, 1h avg`,
        qs: `${one}&from=${iso(end - DAYS * DAY)}&to=${iso(end)}&granularity=1h&aggregation=avg`,
        target: 20,
        sql: raw('avg', 3600, `= $1`, end - DAYS * DAY, end),
        all: false,
      },
      {
        name: `max of all ${SERIES} series, last day, 1h`,
        qs: `metric=cpu&from=${iso(end - DAY)}&to=${iso(end)}&granularity=1h&aggregation=max`,
        target: 100,
        sql: raw('max', 3600, `= ANY($1)`, end - DAY, end),
        all: true,
      },
    ];
    const allIds = await withClient(dbUrl, async (c) =>
      (await c.query<{ id: number }>(`SELECT id FROM series ORDER BY id`)).rows.map((r) => r.id),
    );
    const results: Array<Record<string, string | number>> = [];
    for (const q of questions) {
      const api: number[] = [];
      let rollup = '',
        points = 0;
      for (let i = 0; i < RUNS + 2; i++) {
        const t0 = performance.now();
        const r = await request(`${service.url}/api/v1/metrics/query?${q.qs}`, 'GET');
        const ms = performance.now() - t0;
        if (r.status !== 200) throw new Error(`${q.name}: ${r.status} ${r.body.slice(0, 300)}`);
        if (i >= 2) api.push(ms);
        const json = JSON.parse(r.body);
        rollup = json.rollup ?? 'raw';
        points = json.total_points;
      }
      const sqlTimes = await withClient(dbUrl, async (c) => {
        const out: number[] = [];
        for (let i = 0; i < Math.min(RUNS, 10) + 1; i++) {
          const t0 = performance.now();
          await c.query(q.sql, [q.all ? allIds : allIds[0]]);
          if (i >= 1) out.push(performance.now() - t0);
        }
        return out;
      });
      results.push({
        question: q.name,
        buckets: points,
        'served by': rollup,
        'API p50 ms': median(api),
        'API p90 ms': percentile(api, 0.9),
        'target ms': q.target,
        'raw SQL p50 ms': median(sqlTimes),
      });
    }
    console.log('');
    table(results);
    console.log(
      `\nAPI: HTTP round trip through Timescope (parse, series lookup, plan, SQL, fill, JSON). raw SQL: date_bin over raw points with the covering index, no HTTP.`,
    );
  } finally {
    await service.stop();
    await server.stop();
  }
}

/** The same question over raw points in plain SQL: the "plain PostgreSQL" comparison. */
function raw(agg: 'avg' | 'max', seconds: number, idCondition: string, from: number, to: number): string {
  return `SELECT date_bin('${seconds} seconds', time, timestamptz 'epoch') AS b, ${agg}(value) FROM points
          WHERE series_id ${idCondition} AND time >= '${new Date(from).toISOString()}' AND time < '${new Date(to).toISOString()}'
          GROUP BY 1 ORDER BY 1`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
