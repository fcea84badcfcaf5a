import { loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { encodeCopyBinary } from '../src/storage/copy-binary.js';
import { PointBatchBuilder } from '../src/storage/point-batch.js';
import { Influx, startInflux } from './influx.js';
import {
  benchServer,
  flag,
  median,
  option,
  percentile,
  ratioInterval,
  request,
  ROOT,
  sleep,
  startService,
  table,
  withClient,
} from './lib.js';

/**
 * Query latency through the HTTP API on the issue's data set: 30 days of 10 s data; the last
 * day has 1,000 series, the 29 days before it 100 of them (33.7 M points). p50 of 20 runs after
 * 20 untimed ones (--warmup; every question's untimed runs come before any question is timed),
 * next to the same questions asked of the raw points in plain SQL
 * (no HTTP) in the same run, and with --influx of InfluxDB 1.x holding the same points. Every
 * answer is checked against the raw SQL one before it is timed.
 *
 * Loading, one of:
 * - default: binary COPY straight into the tables, VACUUM ANALYZE, one rollup refresh; kept in
 *   the database timescope_bench_query and reused while its shape matches;
 * - --after-load: a fresh database timescope_bench_afterload, the points sent through
 *   POST /api/v1/metrics (one series and at most 5,000 points a request, 2 clients) to a service
 *   with its jobs on as in production, then --wait seconds (30) before the first query.
 *
 * The server: BENCH_DATABASE_URL or DATABASE_URL (a server where databases may be created, e.g.
 * postgres://postgres@127.0.0.1:5432/test), else an embedded PostgreSQL under data/bench-query.
 *
 *   make bench BENCH_ARGS="query [--influx] [--after-load] [--quick] [--days 30 --series 1000 --old-series 100] [--runs 20] [--warmup 20] [--wait 30] [--reload]"
 */
const QUICK = flag('quick');
const AFTER_LOAD = flag('after-load');
const INFLUX = flag('influx');
const DAYS = option('days', QUICK ? 3 : 30);
const SERIES = option('series', QUICK ? 100 : 1_000);
const OLD_SERIES = option('old-series', QUICK ? 10 : 100);
const RUNS = option('runs', 20);
const WAIT_S = option('wait', 30);
// Untimed rounds before each question's timed ones (the first also checks the answers). A service
// answering dashboards runs its query code hot; two rounds left the first question timing V8
// still compiling Timescope's query path (README, "Benchmarks").
const WARMUP = Math.max(1, option('warmup', 20));
const STEP = 10_000;
const DAY = 86_400_000;
const PER_REQUEST = 5_000;
const SHAPE = `${DAYS}d-${SERIES}-${OLD_SERIES}`;

/** The value of series `s` at time `t`: the same numbers go to every store. */
const valueAt = (s: number, t: number) => 50 + 30 * Math.sin(t / 3_600_000 + s) + ((t / STEP) % 7);

/** The data set as (series index, day start) pieces, oldest day first: every point of that series that day. */
function pieces(end: number): Array<{ s: number; from: number; to: number }> {
  const out: Array<{ s: number; from: number; to: number }> = [];
  for (let d = DAYS; d >= 1; d--) {
    const from = end - d * DAY;
    for (let s = 0; s < (d === 1 ? SERIES : OLD_SERIES); s++) out.push({ s, from, to: from + DAY });
  }
  return out;
}

const loadLine = () => {
  const [a, b, c] = loadavg();
  return `load average ${a.toFixed(2)} ${b.toFixed(2)} ${c.toFixed(2)}`;
};

/** Binary COPY straight into the tables (the default: the data set is loaded once and kept). */
async function copyLoad(dbUrl: string, end: number): Promise<Record<string, number>> {
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
            for (let t = j.from; t < j.to; t += STEP) b.push(idx, t, valueAt(s, t));
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

/**
 * Sends every piece in requests of at most PER_REQUEST points from 2 clients; `send` gets the
 * series index and its points' times. Returns points sent and seconds taken.
 */
async function parallelLoad(
  end: number,
  label: string,
  send: (s: number, times: number[]) => Promise<void>,
): Promise<{ points: number; seconds: number }> {
  const work: Array<{ s: number; times: number[] }> = [];
  for (const p of pieces(end)) {
    for (let t0 = p.from; t0 < p.to; t0 += PER_REQUEST * STEP) {
      const times: number[] = [];
      for (let t = t0; t < Math.min(p.to, t0 + PER_REQUEST * STEP); t += STEP) times.push(t);
      work.push({ s: p.s, times });
    }
  }
  let next = 0,
    points = 0;
  const t0 = performance.now();
  await Promise.all(
    [0, 1].map(async () => {
      while (next < work.length) {
        const w = work[next++];
        await send(w.s, w.times);
        points += w.times.length;
        if (next % 50 === 0) process.stdout.write(`\r${label}: ${(points / 1e6).toFixed(1)} M points`);
      }
    }),
  );
  console.log('');
  return { points, seconds: (performance.now() - t0) / 1000 };
}

/** The points through Timescope's ingest API: the JSON body of collector-api.md, epoch ms times. */
function httpLoad(serviceUrl: string, end: number) {
  return parallelLoad(end, 'POST /api/v1/metrics', async (s, times) => {
    const metrics = times.map((t) => `{"name":"cpu","value":${valueAt(s, t)},"timestamp":${t}}`).join(',');
    const body = Buffer.from(`{"source":"host-${s}","metrics":[${metrics}]}`);
    const r = await request(`${serviceUrl}/api/v1/metrics`, 'POST', body);
    if (r.status !== 200) throw new Error(`ingest answered ${r.status}: ${r.body.slice(0, 300)}`);
  });
}

/** The same points to InfluxDB over its line protocol: measurement cpu, tag source, field value. */
function influxLoad(influx: Influx, end: number) {
  return parallelLoad(end, 'InfluxDB /write', (s, times) =>
    influx.write(times.map((t) => `cpu,source=host-${s} value=${valueAt(s, t)} ${t}`).join('\n')),
  );
}

type Answer = Array<[number, number]>;

interface Question {
  name: string;
  /** Timescope's route and query string. */
  path: string;
  /** Timescope's answer as (time, value) pairs: buckets, or the summary's fields in a fixed order. */
  answer: (json: Record<string, unknown>) => Answer;
  sql: string;
  sqlAnswer: (rows: Array<Record<string, unknown>>) => Answer;
  /** The same question in InfluxQL, and which of its answer to compare (percentiles are nearest-rank there). */
  influxql: string;
  influxAnswer: (rows: Array<Array<number | null>>) => Answer;
  /** The InfluxDB answer is compared with the first of the raw SQL rows only. */
  influxPrefix?: boolean;
  all: boolean;
}

/** One store's turn in a round: its time in ms (the first answer of each store is checked); `into` collects the timed ones. */
interface Store {
  run: (first: boolean) => Promise<number>;
  into: number[];
}

function questions(end: number): Question[] {
  const iso = (t: number) => new Date(t).toISOString();
  const one = `metric=cpu&source=host-0`;
  const buckets = (json: Record<string, unknown>): Answer =>
    (json.data_points as Array<{ timestamp: string; value: number }>).map((p) => [Date.parse(p.timestamp), p.value]);
  const sqlBuckets = (rows: Array<Record<string, unknown>>): Answer => rows.map((r) => [Number(r.t), Number(r.v)]);
  const influxBuckets = (rows: Array<Array<number | null>>): Answer => rows.map((r) => [r[0]!, r[1]!]);
  const bucketQ = (name: string, days: number, seconds: number, agg: 'avg' | 'max', all: boolean): Question => ({
    name,
    path: `/api/v1/metrics/query?${all ? 'metric=cpu' : one}&from=${iso(end - days * DAY)}&to=${iso(end)}&granularity=${seconds / 60}m&aggregation=${agg}`,
    answer: buckets,
    sql: `SELECT (extract(epoch FROM date_bin('${seconds} seconds', time, timestamptz 'epoch')) * 1000)::float8 AS t, ${agg}(value) AS v
          FROM points WHERE series_id ${all ? '= ANY($1)' : '= $1'} AND time >= '${iso(end - days * DAY)}' AND time < '${iso(end)}'
          GROUP BY 1 ORDER BY 1`,
    sqlAnswer: sqlBuckets,
    influxql: `SELECT ${agg === 'avg' ? 'mean' : 'max'}(value) FROM cpu WHERE ${all ? '' : `source = 'host-0' AND `}time >= ${end - days * DAY}ms AND time < ${end}ms GROUP BY time(${seconds}s) fill(none)`,
    influxAnswer: influxBuckets,
    all,
  });
  // The summary's count, min, max, avg and percentiles as (index, value) pairs, comparable across stores.
  const summary = (v: Array<number | null | undefined>): Answer =>
    v.map((x, i) => [i, x === null || x === undefined ? NaN : Number(x)]);
  return [
    bucketQ('one series, 1 day, 5m avg', 1, 300, 'avg', false),
    bucketQ(`one series, ${DAYS} days, 5m avg`, DAYS, 300, 'avg', false),
    bucketQ(`one series, ${DAYS} days, 1h avg`, DAYS, 3600, 'avg', false),
    {
      name: 'one series, 1 day, percentiles',
      path: `/api/v1/metrics/summary?${one}&from=${iso(end - DAY)}&to=${iso(end)}`,
      answer: (json) => {
        const s = json.statistics as Record<string, number> & { percentiles: Record<string, number> };
        return summary([s.count, s.min, s.max, s.avg, s.percentiles.p90, s.percentiles.p95, s.percentiles.p99]);
      },
      sql: `SELECT count(*) AS count, min(value) AS min, max(value) AS max, avg(value) AS avg, stddev_samp(value) AS sd,
                   percentile_cont(array[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY value) AS q
            FROM points WHERE series_id = $1 AND time >= '${iso(end - DAY)}' AND time < '${iso(end)}'`,
      sqlAnswer: ([r]) => {
        const q = r.q as number[];
        return summary([Number(r.count), r.min as number, r.max as number, r.avg as number, q[1], q[2], q[3]]);
      },
      influxql: `SELECT count(value), min(value), max(value), mean(value), median(value), stddev(value), percentile(value, 90), percentile(value, 95), percentile(value, 99)
                 FROM cpu WHERE source = 'host-0' AND time >= ${end - DAY}ms AND time < ${end}ms`,
      // Only count, min, max and mean: InfluxDB's percentile() is nearest-rank, not interpolated.
      influxAnswer: ([r]) => summary([r[1], r[2], r[3], r[4]]),
      influxPrefix: true,
      all: false,
    },
    bucketQ(`max of all ${SERIES} series, last day, 1h`, 1, 3600, 'max', true),
  ];
}

/** Equal within floating-point noise; throws with the first difference. */
function check(what: string, got: Answer, want: Answer, rel: number, prefix = false): void {
  if (prefix ? got.length > want.length : got.length !== want.length)
    throw new Error(`${what}: ${got.length} rows, raw SQL has ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    const [gt, gv] = got[i],
      [wt, wv] = want[i];
    if (gt !== wt || Math.abs(gv - wv) > rel * Math.max(1, Math.abs(wv)))
      throw new Error(`${what}: row ${i} is (${gt}, ${gv}), raw SQL has (${wt}, ${wv})`);
  }
}

async function main(): Promise<void> {
  const external = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL;
  if (external) process.env.BENCH_DATABASE_URL = external;
  const server = await benchServer(join(ROOT, 'data', 'bench-query'));
  const dbName = AFTER_LOAD ? 'timescope_bench_afterload' : 'timescope_bench_query';
  if (AFTER_LOAD) {
    const admin = await server.url('postgres');
    await withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
  }
  const dbUrl = await server.url(dbName);
  console.log(`database: ${server.describe}, ${dbName}`);
  console.log(
    `data set: ${DAYS} days of 10 s points, ${SERIES} series on the last day, ${OLD_SERIES} before; ${loadLine()}`,
  );
  const influx = INFLUX ? await startInflux() : undefined;
  const service = await startService({
    DATABASE_URL: dbUrl,
    JOBS_ENABLED: AFTER_LOAD ? 'true' : 'false',
    TIMESCALEDB: 'off',
    METRICS_RETENTION_DAYS: '0',
  });
  const loads: Array<Record<string, string | number>> = [];
  try {
    let end: number | undefined;
    if (influx) {
      end = Math.floor(Date.now() / STEP) * STEP;
      const r = await influxLoad(influx, end);
      loads.push({
        store: 'InfluxDB (line protocol over HTTP)',
        points: r.points,
        seconds: r.seconds,
        'points/s': Math.round(r.points / r.seconds),
      });
    }
    if (AFTER_LOAD) {
      end ??= Math.floor(Date.now() / STEP) * STEP;
      const r = await httpLoad(service.url, end);
      loads.push({
        store: 'Timescope (POST /api/v1/metrics)',
        points: r.points,
        seconds: r.seconds,
        'points/s': Math.round(r.points / r.seconds),
      });
      console.log(`loaded; waiting ${WAIT_S} s before querying (${loadLine()})`);
      await sleep(WAIT_S * 1000);
    } else {
      await withClient(dbUrl, (c) =>
        c.query(`CREATE TABLE IF NOT EXISTS bench_meta (shape text PRIMARY KEY, end_ms double precision NOT NULL)`),
      );
      const kept = await withClient(
        dbUrl,
        async (c) =>
          (await c.query<{ end_ms: number }>(`SELECT end_ms FROM bench_meta WHERE shape = $1`, [SHAPE])).rows[0]
            ?.end_ms,
      );
      // With --influx both must hold the same times: load again unless the kept set ends where InfluxDB's does.
      if (kept === undefined || flag('reload') || (influx && kept !== end!)) {
        end ??= Math.floor(Date.now() / STEP) * STEP;
        const timings = await copyLoad(dbUrl, end);
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
        end = kept;
        console.log(
          `reusing the loaded data set (${SHAPE}, ending ${new Date(end).toISOString()}); --reload to load it again`,
        );
        await request(`${service.url}/api/v1/system/jobs/rollup-refresh/run`, 'POST');
      }
    }
    if (loads.length) table(loads);
    const state = await withClient(dbUrl, async (c) => {
      const r = await c.query<{ watermark: Date | null; pending: string }>(
        `SELECT watermark, (SELECT count(*) FROM rollup_invalidations) AS pending FROM rollup_state WHERE id = 1`,
      );
      return r.rows[0];
    });
    console.log(
      `rollups when querying: watermark ${state?.watermark?.toISOString() ?? 'none'}, ${state?.pending ?? 0} late ranges waiting; ${loadLine()}`,
    );
    const { first, all } = await withClient(dbUrl, async (c) => {
      const r = await c.query<{ id: number; source: string }>(
        `SELECT id, source FROM series WHERE metric = 'cpu' ORDER BY id`,
      );
      return { first: r.rows.find((x) => x.source === 'host-0')!.id, all: r.rows.map((x) => x.id) };
    });
    const results: Array<Record<string, string | number>> = [];
    const sqlClient = new pg.Client({ connectionString: dbUrl });
    await sqlClient.connect();
    try {
      // Every question warmed up before any is timed: the questions share most of Timescope's
      // query path, and V8 compiles it only after it has run many times, so timing each question
      // right after its own warm-up timed the first one on code the later ones found compiled
      // (bench/RESULTS.md, "Queries").
      const prepared: Array<{
        q: Question;
        stores: Store[];
        api: number[];
        /** Timescope's own query_time_ms of each answer. */
        inside: number[];
        sql: number[];
        inf: number[];
        rollup: () => string;
        /** How many rows (buckets or figures) the answers were checked on. */
        checked: number;
      }> = [];
      for (const q of questions(end)) {
        const args = [q.all ? all : first];
        const want = q.sqlAnswer((await sqlClient.query(q.sql, args)).rows);
        const api: number[] = [],
          sql: number[] = [],
          inf: number[] = [],
          insideMs: number[] = [];
        let rollup = '';
        // Each store in its turn: its time in ms; the first answer of each is checked.
        const timescope = async (first: boolean) => {
          const t0 = performance.now();
          const r = await request(`${service.url}${q.path}`, 'GET');
          const ms = performance.now() - t0;
          if (r.status !== 200) throw new Error(`${q.name}: ${r.status} ${r.body.slice(0, 300)}`);
          const inside = /"query_time_ms":([\d.]+)/.exec(r.body.slice(-200));
          if (inside && !first) insideMs.push(Number(inside[1]));
          if (first) {
            const json = JSON.parse(r.body) as Record<string, unknown>;
            check(`${q.name} (Timescope)`, q.answer(json), want, 1e-9);
            rollup = (json.rollup as string | undefined) ?? (json.data_points ? 'raw' : 'raw (summary)');
          }
          return ms;
        };
        const rawSql = async () => {
          const t0 = performance.now();
          await sqlClient.query(q.sql, args);
          return performance.now() - t0;
        };
        const influxDb = async (first: boolean) => {
          const t0 = performance.now();
          const rows = await influx!.query(q.influxql);
          const ms = performance.now() - t0;
          if (first) check(`${q.name} (InfluxDB)`, q.influxAnswer(rows), want, 1e-6, q.influxPrefix);
          return ms;
        };
        const stores: Store[] = [
          { run: timescope, into: api },
          { run: rawSql, into: sql },
          ...(influx ? [{ run: influxDb, into: inf }] : []),
        ];
        prepared.push({ q, stores, api, inside: insideMs, sql, inf, rollup: () => rollup, checked: want.length });
      }
      // WARMUP untimed rounds of every question, then at least RUNS rounds of each taking each
      // store in turn, so that noise hits them alike. Whoever goes right after another store's
      // query shares the CPUs with what that store still does after answering (InfluxDB's Go
      // runtime, a PostgreSQL backend), so the rounds alternate two orders, A B C then A C B: in
      // the sequence A B C A C B A …, every store follows every other one equally often. (A
      // rotation, A B C / B C A / C A B, put Timescope right after InfluxDB in two rounds of
      // three, and it answered slower there: bench/RESULTS.md.)
      const orders = (stores: Store[]) => [stores, [stores[0], ...stores.slice(1).reverse()]];
      for (const { stores } of prepared)
        for (let i = 0; i < WARMUP; i++) for (const store of orders(stores)[i % 2]) await store.run(i === 0);
      const rounds = Math.ceil(RUNS / 2) * 2;
      for (const { q, stores, api, inside, sql, inf, rollup, checked } of prepared) {
        inside.length = 0; // the warm-up's
        for (let i = 0; i < rounds; i++) {
          for (const store of orders(stores)[(WARMUP + i) % 2]) store.into.push(await store.run(false));
        }
        const row: Record<string, string | number> = {
          question: q.name,
          'rows checked': checked,
          'served by': rollup(),
          'Timescope p50 ms': median(api),
          'p90 ms': percentile(api, 0.9),
          'inside p50 ms': inside.length ? median(inside) : '-',
          'raw SQL p50 ms': median(sql),
          'x raw SQL': median(api) / median(sql),
        };
        if (influx) {
          row['InfluxDB p50 ms'] = median(inf);
          row['x InfluxDB'] = median(api) / median(inf);
          const [lo, hi] = ratioInterval(api, inf);
          row['90% interval'] = `${lo.toFixed(2)}-${hi.toFixed(2)}`;
          row['rounds faster'] = `${api.filter((ms, i) => ms < inf[i]).length}/${api.length}`;
        }
        results.push(row);
      }
    } finally {
      await sqlClient.end();
    }
    console.log('');
    table(results);
    console.log(`\nwhere the fixed cost of a request goes, and what a wait costs each store (p50 of ${RUNS * 5}):`);
    table(
      await fixedCosts(
        service.url,
        end,
        dbUrl,
        influx,
        questions(end).find((q) => q.name === 'one series, 1 day, 5m avg')!,
      ),
    );
    console.log(
      `\nTimescope: HTTP round trip (auth, parse, series lookup, plan, SQL, JSON). raw SQL: the same question over raw points, no HTTP (date_bin or percentile_cont, covering index).` +
        (influx ? ` InfluxDB: HTTP round trip of the InfluxQL query.` : '') +
        ` "x": Timescope's p50 over the other's (below 1 is faster). Every answer was checked against raw SQL. ${loadLine()}`,
    );
  } finally {
    await service.stop();
    await influx?.stop();
    await server.stop();
  }
}

/**
 * Latency of routes that do less and less, to see the fixed cost per request; then what a wait
 * costs each store: the 1-day question, and PostgreSQL's `SELECT 1` over `pg` with no HTTP, back to
 * back and after 10 ms idle (the main table's requests each follow other work and a pause).
 */
async function fixedCosts(
  url: string,
  end: number,
  dbUrl: string,
  influx: Influx | undefined,
  day: Question,
): Promise<Array<Record<string, string | number>>> {
  const iso = (t: number) => new Date(t).toISOString();
  /** One timed call: its time in ms and, for the service's answers, their query_time_ms. */
  type Probe = () => Promise<{ ms: number; inside?: number }>;
  const timed =
    (call: () => Promise<unknown>): Probe =>
    async () => {
      const t0 = performance.now();
      await call();
      return { ms: performance.now() - t0 };
    };
  const http =
    (path: string): Probe =>
    async () => {
      let body = '';
      const { ms } = await timed(async () => {
        const r = await request(`${url}${path}`, 'GET');
        if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.body.slice(0, 200)}`);
        body = r.body;
      })();
      return { ms, inside: (JSON.parse(body) as { query_time_ms?: number }).query_time_ms };
    };
  const sql = new pg.Client({ connectionString: dbUrl });
  await sql.connect();
  try {
    const select1 = timed(() => sql.query('SELECT 1'));
    const probes: Array<[string, Probe, number?]> = [
      ['GET /health/live (no key)', http('/health/live')],
      ['GET /api/v1/auth/whoami (key check only)', http('/api/v1/auth/whoami')],
      [
        'query, 5 minutes at 5m (1 bucket)',
        http(`/api/v1/metrics/query?metric=cpu&source=host-0&from=${iso(end - 300_000)}&to=${iso(end)}&granularity=5m`),
      ],
      ['query, 1 day at 5m', http(day.path)],
      ['query, 1 day at 5m, 10 ms idle before each', http(day.path), 10],
      ['PostgreSQL SELECT 1 (pg, no HTTP)', select1],
      ['PostgreSQL SELECT 1, 10 ms idle before each', select1, 10],
    ];
    if (influx) {
      const influxDay = timed(() => influx.query(day.influxql));
      probes.push(
        ['InfluxDB, 1 day at 5m', influxDay],
        ['InfluxDB, 1 day at 5m, 10 ms idle before each', influxDay, 10],
      );
    }
    const out: Array<Record<string, string | number>> = [];
    for (const [name, probe, idleMs] of probes) {
      const ms: number[] = [],
        inside: number[] = [];
      for (let i = 0; i < RUNS * 5 + 5; i++) {
        if (idleMs) await sleep(idleMs);
        const r = await probe();
        if (i < 5) continue;
        ms.push(r.ms);
        if (r.inside !== undefined) inside.push(r.inside);
      }
      out.push({ route: name, 'p50 ms': median(ms), 'query_time_ms p50': inside.length ? median(inside) : '-' });
    }
    return out;
  } finally {
    await sql.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
