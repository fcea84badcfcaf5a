import http from 'node:http';
import { from as copyFrom } from 'pg-copy-streams';
import pg from 'pg';
import { encodeCopyBinary } from '../src/storage/copy-binary.js';
import { PointBatchBuilder } from '../src/storage/point-batch.js';
import {
  authHeaders,
  benchServer,
  flag,
  machineBusy,
  median,
  option,
  request,
  startService,
  table,
  withClient,
} from './lib.js';

/**
 * HTTP ingest (JSON, and InfluxDB line protocol) vs raw binary COPY of the same rows into the same kind of table, in one run.
 * 1,000 series (10 metrics × 100 hosts), 10 s apart, time-major as a live feed arrives, in
 * requests of 5,000 points from 2 concurrent clients (--clients N); a 2xx means committed. The COPY baseline
 * writes the same rows with 2 connections, 5,000 rows per committed transaction, in arrival order;
 * a second COPY baseline sends each 5,000 rows grouped by series, as the service's writer does, to
 * show how much of the ratio is that ordering. Repetitions rotate which goes first, each phase
 * after a CHECKPOINT; figures are medians. The service's RSS is sampled throughout, and how busy
 * the whole machine was is read from /proc/stat around each phase.
 *
 *   make bench BENCH_ARGS="ingest"            (--quick: fewer points; --reps=N; --points=N per repetition;
 *                                             --shapes=lp,lp-fields: only these next to COPY; all by default.
 *                                             Write options with `=`: make's runner takes a bare word such
 *                                             as `lp` for a benchmark's name)
 */
const QUICK = flag('quick');
const SHAPE_LABELS: Record<string, string> = {
  point: 'per-point',
  scrape: 'per-scrape',
  lp: 'LP',
  'lp-fields': 'LP 10-field',
};
const SHAPES = (() => {
  const i = process.argv.indexOf('--shapes');
  const eq = process.argv.find((a) => a.startsWith('--shapes='));
  const list = eq
    ? eq.slice('--shapes='.length).split(',')
    : i >= 0
      ? (process.argv[i + 1] ?? '').split(',')
      : Object.keys(SHAPE_LABELS);
  for (const s of list)
    if (!SHAPE_LABELS[s]) throw new Error(`--shapes: ${s} is not one of ${Object.keys(SHAPE_LABELS).join(', ')}`);
  return list;
})();
const REPS = option('reps', QUICK ? 3 : 5);
const POINTS = option('points', QUICK ? 400_000 : 2_000_000);
const PER_REQUEST = 5_000;
const CLIENTS = option('clients', 2);
const SERIES = 1_000;
const STEP = 10_000;

interface Row {
  metric: string;
  host: string;
  t: number;
  v: number;
}

function rows(start: number, count: number): Row[] {
  const out: Row[] = [];
  for (let k = 0; out.length < count; k++) {
    const t = start + k * STEP;
    for (let s = 0; s < SERIES && out.length < count; s++)
      out.push({
        metric: `metric_${s % 10}`,
        host: `host-${Math.floor(s / 10)}`,
        t,
        v: Math.round(Math.random() * 1e6) / 100,
      });
  }
  return out;
}

/**
 * Request bodies, serialised before timing: the clients only send bytes. Two shapes of the same
 * points: `point` gives every point its unit, two tags and an ISO timestamp (the reference's
 * submission written out in full, ~134 bytes a point); `scrape` sends what a host agent sends per
 * scrape to /metrics/batch, one batch per host and timestamp with name and value per point (~35).
 */
function bodies(data: Row[], shape: 'point' | 'scrape'): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += PER_REQUEST) {
    const part = data.slice(i, i + PER_REQUEST);
    if (shape === 'point') {
      const metrics = part.map((r) => ({
        name: r.metric,
        value: r.v,
        unit: 'ms',
        tags: { host: r.host, region: 'eu-west-1' },
        timestamp: new Date(r.t).toISOString(),
      }));
      out.push(Buffer.from(JSON.stringify({ source: 'bench', metrics })));
    } else {
      const batches = new Map<
        string,
        { source: string; timestamp: string; metrics: Array<{ name: string; value: number }> }
      >();
      for (const r of part) {
        const key = `${r.host}|${r.t}`;
        let b = batches.get(key);
        if (!b) batches.set(key, (b = { source: r.host, timestamp: new Date(r.t).toISOString(), metrics: [] }));
        b.metrics.push({ name: r.metric, value: r.v });
      }
      out.push(Buffer.from(JSON.stringify({ batches: [...batches.values()] })));
    }
  }
  return out;
}

/**
 * The same points as InfluxDB line protocol with nanosecond timestamps (what Telegraf and the
 * InfluxDB clients send) to /api/v2/write, 5,000 points a request. `line`: one point per line,
 * the field `value` (metric = measurement) and the point shape's two tags, 5,000 lines (~75 B a
 * point); `fields`: Telegraf's shape, one line per host and time with its 10 metrics as fields
 * (metric = bench_<field>), 500 lines (~22 B a point).
 */
function lineBodies(data: Row[], shape: 'line' | 'fields'): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += PER_REQUEST) {
    const part = data.slice(i, i + PER_REQUEST);
    let text = '';
    if (shape === 'line') {
      for (const r of part) text += `${r.metric},host=${r.host},region=eu-west-1 value=${r.v} ${r.t}000000\n`;
    } else {
      const lines = new Map<string, string>();
      for (const r of part) {
        const key = `${r.host} ${r.t}`;
        const prev = lines.get(key);
        lines.set(
          key,
          `${prev === undefined ? `bench,host=${r.host},region=eu-west-1 ` : `${prev},`}${r.metric}=${r.v}`,
        );
      }
      for (const [key, line] of lines) text += `${line} ${key.split(' ')[1]}000000\n`;
    }
    out.push(Buffer.from(text));
  }
  return out;
}

/** A POST of line protocol, as the InfluxDB clients send it. */
function postText(url: string, body: Buffer, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { ...authHeaders(), 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const LP_PATH = '/api/v2/write?org=bench&bucket=bench_lp&precision=ns';

async function lineIngest(url: string, payloads: Buffer[]): Promise<number> {
  // Connections of this phase only: one kept idle through the other phases may have been closed
  // by the server's keep-alive timeout by the time it is reused (ECONNRESET).
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const t0 = performance.now();
  let next = 0;
  const client = async () => {
    while (next < payloads.length) {
      const r = await postText(`${url}${LP_PATH}`, payloads[next++], agent);
      if (r.status !== 204) throw new Error(`line protocol answered ${r.status}: ${r.body.slice(0, 300)}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: CLIENTS }, client));
    return (performance.now() - t0) / 1000;
  } finally {
    agent.destroy();
  }
}

async function httpIngest(url: string, payloads: Buffer[], path = '/api/v1/metrics'): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const client = async () => {
    while (next < payloads.length) {
      const body = payloads[next++];
      const r = await request(`${url}${path}`, 'POST', body);
      if (r.status !== 200) throw new Error(`ingest answered ${r.status}: ${r.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  return (performance.now() - t0) / 1000;
}

async function copyIngest(dbUrl: string, table: string, buffers: Buffer[]): Promise<number> {
  const clients = await Promise.all(
    [0, 1].map(async () => {
      const c = new pg.Client({ connectionString: dbUrl });
      await c.connect();
      return c;
    }),
  );
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < buffers.length) {
        const buf = buffers[next++];
        await c.query('BEGIN');
        await new Promise<void>((res, rej) => {
          const s = c.query(copyFrom(`COPY ${table} (time, series_id, value) FROM STDIN (FORMAT binary)`));
          s.on('error', rej);
          s.on('finish', () => res());
          s.end(buf);
        });
        await c.query('COMMIT');
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(clients.map((c) => c.end()));
  return seconds;
}

/**
 * Full (mark-compact) collections the service has run so far, from its own Prometheus metrics.
 * Under a steady load V8 should rarely need one: a run of them (a few a second) is the sign of a
 * heap growth limit set too tight, and costs a third more CPU per point (see v8-tuning.ts).
 */
async function fullGcs(url: string): Promise<number> {
  const r = await request(`${url}/prometheus-metrics`, 'GET');
  if (r.status !== 200) throw new Error(`/prometheus-metrics answered ${r.status}`);
  const m = /^nodejs_gc_duration_seconds_count\{kind="major"\} (\d+)/m.exec(r.body);
  return m ? Number(m[1]) : 0; // none yet: prom-client prints a kind once it has seen one
}

/** The service's memory as it sees it (MB): where its RSS goes. */
async function memory(url: string): Promise<string> {
  const r = await request(`${url}/api/v1/monitoring/debug/info`, 'GET');
  const m = (JSON.parse(r.body) as { debug?: { process?: { memory?: Record<string, number> } } }).debug?.process
    ?.memory;
  if (!m) return `(no figures: ${r.status})`;
  const mb = (k: string) => Math.round(m[k] / 1048576);
  return `rss ${mb('rss_bytes')}, V8 heap ${mb('heap_used_bytes')} used of ${mb('heap_total_bytes')}, external ${mb('external_bytes')} (array buffers ${mb('array_buffers_bytes')})`;
}

async function main(): Promise<void> {
  const server = await benchServer();
  const dbUrl = await server.url(`timescope_bench_ingest_${process.pid}`);
  console.log(`database: ${server.describe}`);
  const service = await startService({ DATABASE_URL: dbUrl, JOBS_ENABLED: 'false', TIMESCALEDB: 'off' });
  let maxRss = 0;
  const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, service.rssMb())), 100);
  try {
    console.log(`service memory after start (MB): ${await memory(service.url)}`);
    const start = Date.now() - 3 * 86_400_000;
    // Warm-up: creates the 1,000 series and the partitions, warms both code paths.
    const warm = rows(start - 3_600_000, 200_000);
    if (SHAPES.includes('point')) await httpIngest(service.url, bodies(warm, 'point'));
    if (SHAPES.includes('scrape')) await httpIngest(service.url, bodies(warm, 'scrape'), '/api/v1/metrics/batch');
    if (SHAPES.includes('lp')) await lineIngest(service.url, lineBodies(warm, 'line'));
    if (SHAPES.includes('lp-fields')) await lineIngest(service.url, lineBodies(warm, 'fields'));
    const ids = await withClient(dbUrl, async (c) => {
      for (const table of ['bench_copy', 'bench_copy_sorted']) {
        await c.query(`CREATE TABLE ${table} (LIKE points) PARTITION BY RANGE (time)`);
        await c.query(`CREATE UNIQUE INDEX ON ${table} (series_id, time) INCLUDE (value)`);
        // Every day the repetitions reach (each holds POINTS / SERIES timestamps STEP apart), plus
        // the day before: with a late start in the day, five repetitions cross two midnights.
        const first = Math.floor(start / 86_400_000) - 1;
        const last = Math.floor((start + REPS * Math.ceil(POINTS / SERIES) * STEP) / 86_400_000);
        for (let d = 0; d <= last - first; d++) {
          const lo = (first + d) * 86_400_000;
          await c.query(
            `CREATE TABLE ${table}_${d} PARTITION OF ${table} FOR VALUES FROM ('${new Date(lo).toISOString()}') TO ('${new Date(lo + 86_400_000).toISOString()}')`,
          );
        }
      }
      const r = await c.query<{ id: number; metric: string; source: string; tags: { host: string } }>(
        `SELECT id, metric, source, tags FROM series`,
      );
      return new Map(r.rows.map((x) => [`${x.metric}|${x.tags.host}`, x.id]));
    });
    // CHECKPOINT needs a superuser or pg_checkpoint; without either the phases run as they come.
    const checkpoints = await withClient(dbUrl, (c) => c.query('CHECKPOINT')).then(
      () => true,
      (err: Error) => (console.log(`no CHECKPOINT between phases: ${err.message}`), false),
    );
    const results: Array<Record<string, string | number>> = [];
    let t = start;
    for (let rep = 1; rep <= REPS; rep++) {
      const data = rows(t, POINTS);
      t += Math.ceil(POINTS / SERIES) * STEP;
      // The request bodies of each shape, made before timing.
      const send: Record<string, () => () => Promise<number>> = {
        point: () =>
          (
            (b) => () =>
              httpIngest(service.url, b)
          )(bodies(data, 'point')),
        scrape: () =>
          (
            (b) => () =>
              httpIngest(service.url, b, '/api/v1/metrics/batch')
          )(bodies(data, 'scrape')),
        lp: () =>
          (
            (b) => () =>
              lineIngest(service.url, b)
          )(lineBodies(data, 'line')),
        'lp-fields': () =>
          (
            (b) => () =>
              lineIngest(service.url, b)
          )(lineBodies(data, 'fields')),
      };
      // The same rows as binary COPY buffers of 5,000 rows, encoded before timing: in arrival
      // order (the baseline), and grouped by series as the service's writer sends them.
      const copyBuffers: Buffer[] = [],
        sortedBuffers: Buffer[] = [];
      for (let i = 0; i < data.length; i += PER_REQUEST) {
        const b = new PointBatchBuilder(PER_REQUEST);
        const part = data.slice(i, i + PER_REQUEST);
        const idx = new Map<string, number>();
        const seriesIds: number[] = [];
        for (const r of part) {
          const key = `${r.metric}|${r.host}`;
          let s = idx.get(key);
          if (s === undefined) {
            s = b.addSeries(r.metric, 'bench', { host: r.host }, null);
            idx.set(key, s);
            seriesIds[s] = ids.get(key)!;
          }
          b.push(s, r.t, r.v);
        }
        const encodable = { batch: b.build(), ids: Int32Array.from(seriesIds) };
        copyBuffers.push(encodeCopyBinary([encodable]));
        sortedBuffers.push(encodeCopyBinary([encodable], undefined, true));
      }
      // The phases in a rotating order, so that drift in the machine's load spreads over all.
      const phases: Array<[string, () => Promise<number>]> = [
        ['copy', () => copyIngest(dbUrl, 'bench_copy', copyBuffers)],
        ['copy sorted', () => copyIngest(dbUrl, 'bench_copy_sorted', sortedBuffers)],
        ...SHAPES.map((s): [string, () => Promise<number>] => [s, send[s]()]),
      ];
      const seconds: Record<string, number> = {};
      const cpu: Record<string, number> = {};
      const gcs: Record<string, number> = {};
      const busy: Record<string, number> = {};
      for (let k = 0; k < phases.length; k++) {
        const [name, run] = phases[(k + rep) % phases.length];
        // Every phase starts right after a checkpoint: on a server with the default max_wal_size
        // (1 GB) one fell every few phases, inside whichever was running, and COPY alone ranged
        // 370,000-710,000 points/s between repetitions of one run.
        if (checkpoints) await withClient(dbUrl, (c) => c.query('CHECKPOINT'));
        const gc0 = await fullGcs(service.url);
        const cpu0 = service.cpuSeconds();
        const busyNow = machineBusy();
        seconds[name] = await run();
        busy[name] = busyNow();
        cpu[name] = ((service.cpuSeconds() - cpu0) * 1e6) / POINTS;
        gcs[name] = (await fullGcs(service.url)) - gc0;
      }
      const row: Record<string, string | number> = {
        rep,
        points: POINTS,
        'COPY pts/s': Math.round(POINTS / seconds.copy),
        'sorted COPY pts/s': Math.round(POINTS / seconds['copy sorted']),
        'COPY busy %': Math.round(busy.copy * 100),
      };
      for (const s of SHAPES) {
        row[`${SHAPE_LABELS[s]} pts/s`] = Math.round(POINTS / seconds[s]);
        row[`${SHAPE_LABELS[s]} ratio`] = seconds.copy / seconds[s];
        row[`${SHAPE_LABELS[s]} vs sorted`] = seconds['copy sorted'] / seconds[s];
        row[`${SHAPE_LABELS[s]} CPU µs/pt`] = cpu[s];
        row[`${SHAPE_LABELS[s]} full GCs`] = gcs[s];
        row[`${SHAPE_LABELS[s]} busy %`] = Math.round(busy[s] * 100);
      }
      row['max RSS MB'] = Math.round(maxRss);
      results.push(row);
      console.log(JSON.stringify(results[results.length - 1]));
      console.log(`service memory after repetition ${rep} (MB): ${await memory(service.url)}`);
    }
    const stored = await withClient(
      dbUrl,
      async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM points`)).rows[0].n,
    );
    console.log('');
    table(results);
    console.log('');
    const med = (k: string) => median(results.map((r) => r[k] as number));
    const summary: Record<string, string | number> = {
      'median COPY pts/s': Math.round(med('COPY pts/s')),
      'sorted COPY pts/s': Math.round(med('sorted COPY pts/s')),
    };
    for (const s of SHAPES) {
      summary[`${SHAPE_LABELS[s]} pts/s`] = Math.round(med(`${SHAPE_LABELS[s]} pts/s`));
      summary[`${SHAPE_LABELS[s]} ratio`] = med(`${SHAPE_LABELS[s]} ratio`);
      summary[`${SHAPE_LABELS[s]} vs sorted`] = med(`${SHAPE_LABELS[s]} vs sorted`);
    }
    summary[`service CPU µs/pt (${SHAPES.join(', ')})`] = SHAPES.map((s) =>
      med(`${SHAPE_LABELS[s]} CPU µs/pt`).toFixed(2),
    ).join(', ');
    summary[`full GCs (${SHAPES.join(', ')}), all repetitions`] = SHAPES.map((s) =>
      results.reduce((n, r) => n + (r[`${SHAPE_LABELS[s]} full GCs`] as number), 0),
    ).join(', ');
    // How much of the machine's CPU each phase used: below 100%, a phase waited on something other than CPU.
    summary[`machine busy % (COPY, ${SHAPES.join(', ')})`] = ['COPY', ...SHAPES.map((s) => SHAPE_LABELS[s])]
      .map((l) => Math.round(med(`${l} busy %`)))
      .join(', ');
    summary['max RSS MB'] = Math.round(maxRss);
    summary['points stored'] = stored;
    table([summary]);
    console.log(
      `ratio: to COPY of the rows in arrival order (the baseline); vs sorted: to COPY of each 5,000 rows grouped by series, as the service's writer orders them.\n` +
        `targets (issue 13): ratio to COPY >= 0.8 for every shape, max RSS <= 200 MB; earlier: >= 200,000 pts/s`,
    );
  } finally {
    clearInterval(rssTimer);
    await service.stop();
    await withClient(await server.url('postgres'), (c) =>
      c.query(`DROP DATABASE IF EXISTS timescope_bench_ingest_${process.pid} WITH (FORCE)`),
    ).catch(() => undefined);
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
