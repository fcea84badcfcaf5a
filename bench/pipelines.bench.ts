import 'reflect-metadata';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createApp } from '../src/app.factory.js';
import { loadConfig } from '../src/config/config.js';
import { Database } from '../src/database/database.js';
import { compileFormula, parseFormula } from '../src/pipelines/formula.js';
import { PointBatchBuilder } from '../src/storage/point-batch.js';
import { JobsService } from '../src/jobs/jobs.service.js';
import { PointWriter } from '../src/storage/point-writer.js';
import { benchServer, flag, median, ROOT, withClient } from './lib.js';

/**
 * Pipelines: how long a dry-run over a day of history takes with the aggregation in PostgreSQL
 * (from raw points, then from a rollup tier once materialised), next to only fetching the same raw
 * points into Node (what aggregating in Node would cost before any arithmetic), and how fast the
 * formula stage evaluates rows.
 *
 *   make bench BENCH_ARGS=pipelines            (100 series × 1 day at 10 s = 864,000 points)
 *   make bench BENCH_ARGS="pipelines --quick"  (20 series)
 *
 * PostgreSQL: BENCH_DATABASE_URL (a server that may create databases), else an embedded server with
 * the settings of ../shared/notes/performance.md (bench/lib.ts). The service runs in this process.
 */
const quick = flag('quick');
const HOSTS = quick ? 10 : 50;
const STEP = 10_000;
const DAY = 86_400_000;
const REPEAT = 5;

async function time(fn: () => Promise<unknown>): Promise<number> {
  await fn(); // warm: plans, caches
  const ms: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function main() {
  const server = await benchServer(join(ROOT, 'data', 'bench-pipelines')); // the server is kept; this run's database is dropped
  const name = `timescope_bench_${randomBytes(4).toString('hex')}`;
  const url = await server.url(name);
  console.log(`PostgreSQL: ${server.describe}`);
  let app: NestFastifyApplication | undefined;
  try {
    app = await createApp(
      loadConfig({
        DATABASE_URL: url,
        JOBS_ENABLED: 'false',
        LOG_LEVEL: 'warn',
        METRICS_RETENTION_DAYS: '0',
        QUERY_MAX_SERIES: '100000',
      }),
      false,
    );
    const fastify = app.getHttpAdapter().getInstance();
    const db = app.get(Database);

    // A day of cpu and memory for HOSTS hosts, every 10 s, ending at the last whole hour.
    const end = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const from = end - DAY;
    const writer = app.get(PointWriter);
    let total = 0;
    const t0 = performance.now();
    for (let t = from; t < end;) {
      const b = new PointBatchBuilder(50_000);
      for (; t < end && b.length < 50_000 - HOSTS * 2; t += STEP) {
        for (let h = 0; h < HOSTS; h++) {
          b.push(
            b.addSeries('cpu', `node-${h}`, { host: `h${h}` }, null),
            t,
            50 + 40 * Math.sin(t / 3_600_000 + h) + (h % 7),
          );
          b.push(
            b.addSeries('memory', `node-${h}`, { host: `h${h}` }, null),
            t,
            1000 + 100 * Math.cos(t / 7_200_000 + h),
          );
        }
      }
      total += b.length;
      await writer.write(b.build());
    }
    console.log(
      `stored ${total.toLocaleString('en-US')} points (${HOSTS * 2} series × 1 day at 10 s) in ${((performance.now() - t0) / 1000).toFixed(1)} s; flavour ${db.info.flavour}`,
    );
    await db.writePool.query('VACUUM ANALYZE points');

    const dryRun = (definition: unknown, range: { from: number; to: number }) => async () => {
      const r = await fastify.inject({
        method: 'POST',
        url: `/api/v1/pipelines/dry-run?from=${new Date(range.from).toISOString()}&to=${new Date(range.to).toISOString()}`,
        payload: definition as object,
      });
      if (r.statusCode !== 200) throw new Error(`${r.statusCode} ${r.body}`);
      return r;
    };
    const pipeline = (window: string, functions: string[], extra: Record<string, unknown> = {}) => ({
      name: 'bench',
      pipeline: [
        { operation: 'filter', params: { metrics: ['cpu', 'memory'] } },
        { operation: 'aggregate', params: { window, functions, group_by: ['host'] } },
        { operation: 'transform', params: { formula: 'avg_cpu * 10 + max_memory / 100' } },
      ],
      ...extra,
    });
    const day = { from, to: end };
    const sixHours = { from: end - DAY / 4, to: end };

    const rows: Array<[string, number, number]> = [];
    const fetchRaw = async (range: { from: number; to: number }) => {
      const r = await db.readPool.query(`SELECT time, series_id, value FROM points WHERE time >= $1 AND time < $2`, [
        new Date(range.from),
        new Date(range.to),
      ]);
      return r.rowCount;
    };
    const rawDay = await time(() => fetchRaw(day));
    rows.push(['fetch the raw points of the day into Node (no aggregation yet)', rawDay, total]);
    rows.push([
      'dry-run, 1 day, 5m windows, avg+max by host, formula',
      await time(dryRun(pipeline('5m', ['avg', 'max']), day)),
      total,
    ]);
    rows.push([
      'dry-run, 1 day, 5m windows, avg+max+p50+p95+p99 by host',
      await time(dryRun(pipeline('5m', ['avg', 'max', 'p50', 'p95', 'p99']), day)),
      total,
    ]);
    rows.push([
      'dry-run, 1 day, 1h windows, avg+max by host',
      await time(dryRun(pipeline('1h', ['avg', 'max']), day)),
      total,
    ]);
    rows.push(['fetch the raw points of 6 hours into Node', await time(() => fetchRaw(sixHours)), total / 4]);
    rows.push([
      'dry-run, 6 hours, 5m windows every 1m (overlapping), avg+max',
      await time(dryRun(pipeline('5m', ['avg', 'max'], { schedule: { every: '1m' } }), sixHours)),
      total / 4,
    ]);
    rows.push([
      'dry-run, 6 hours, 5m windows (tumbling), avg+max',
      await time(dryRun(pipeline('5m', ['avg', 'max']), sixHours)),
      total / 4,
    ]);
    // Once the rollups are materialised, whole windows of avg/sum/min/max/count come from a tier.
    const refresh = await app.get(JobsService).runNow('rollup-refresh');
    console.log(`rollup-refresh: ${refresh.outcome} in ${(refresh.duration_ms / 1000).toFixed(1)} s`);
    rows.push([
      'after rollup-refresh: dry-run, 1 day, 5m windows, avg+max by host, formula (rollup_5m)',
      await time(dryRun(pipeline('5m', ['avg', 'max']), day)),
      total,
    ]);
    rows.push([
      'after rollup-refresh: dry-run, 1 day, 1h windows, avg+max by host (rollup_1h)',
      await time(dryRun(pipeline('1h', ['avg', 'max']), day)),
      total,
    ]);

    console.log(`\nmedian of ${REPEAT} runs after one warm-up; points = raw points in the range`);
    console.log('| case | ms | raw points | M points/s | x fetching the raw points |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const [what, ms, pts] of rows) {
      const base = pts === total ? rawDay : rows[4][1]; // the fetch of the same range
      console.log(
        `| ${what} | ${ms.toFixed(1)} | ${pts.toLocaleString('en-US')} | ${(pts / ms / 1000).toFixed(2)} | ${(ms / base).toFixed(2)} |`,
      );
    }

    // The formula stage alone: rows per second through compiled closures.
    const f = parseFormula(
      'clamp(avg_cpu * 10 + max_memory / 100, 0, 1000) > 500 ? round(avg_cpu, 2) : coalesce(max_memory, 0) / 2',
    );
    const compiled = compileFormula(
      f,
      new Map([
        ['avg_cpu', 0],
        ['max_memory', 1],
      ]),
    );
    const data = Array.from({ length: 1_000_000 }, (_, i) => [(i % 100) + 0.5, i % 13 === 0 ? null : 1000 + (i % 50)]);
    let sink = 0;
    const ms = await time(async () => {
      for (const row of data) sink += compiled(row) ?? 0;
    });
    console.log(
      `\nformula stage: 1,000,000 rows of "${f.text}" in ${ms.toFixed(1)} ms = ${ms.toFixed(0)} ns/row (checksum ${sink.toFixed(0)})`,
    );
  } finally {
    await app?.close();
    const admin = new URL(url);
    admin.pathname = '/postgres';
    await withClient(admin.toString(), (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
