import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Database } from '../../src/database/database.js';
import { RetentionRepository } from '../../src/retention/retention.repository.js';
import { RetentionService } from '../../src/retention/retention.service.js';
import { ingest, KnownPoint } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const today = Math.floor(Date.now() / DAY) * DAY;
const dayStart = (ago: number) => today - ago * DAY;
const hourly = (ago: number, v = ago): KnownPoint[] =>
  Array.from({ length: 24 }, (_, h) => ({
    metric: 'ret',
    source: 'h',
    tags: {},
    t: dayStart(ago) + h * HOUR + 30 * 60_000,
    v,
  }));

describeEachFlavour(
  'retention',
  (ctx) => {
    const count = async (sql: string) => (await ctx.t.sql.query(sql)).rows[0].n as number;
    const rawPoints = () => count(`SELECT count(*)::int AS n FROM points`);
    const rolledUp = (table: string) => count(`SELECT coalesce(sum(count), 0)::int AS n FROM ${table}`);
    const report = (run: any, table: string) => run.details.tables.find((x: { table: string }) => x.table === table);
    const setConfig = async (body: unknown) =>
      assert.equal((await ctx.t.request('PUT', '/api/v1/config', body)).status, 200);

    it('drops whole days of raw points past the retention and leaves recent points and rollups alone', async () => {
      await ingest(ctx.t, [...hourly(20), ...hourly(10), ...hourly(5), ...hourly(1)]);
      await ctx.t.runJob('rollup-refresh');
      assert.equal(await rolledUp('rollup_1h'), 96);
      await setConfig({ storage: { retention_days: 7 } });
      const run = await ctx.t.runJob('retention');
      const points = report(run, 'points');
      assert.equal(points.layout, ctx.flavour === 'timescaledb' ? 'hypertable' : 'partitioned');
      assert.equal(points.dropped.length, 2, JSON.stringify(points));
      assert.equal(await rawPoints(), 48);
      assert.equal(
        await count(`SELECT count(*)::int AS n FROM points WHERE time < '${new Date(dayStart(5)).toISOString()}'`),
        0,
      );
      for (const table of ['rollup_1m', 'rollup_5m', 'rollup_1h', 'rollup_1d']) {
        assert.equal(await rolledUp(table), 96, `${table} keeps the dropped days`);
        assert.equal(report(run, table).dropped.length, 0);
      }
    });

    it('rollups keep the dropped days through later refreshes, and queries still answer from them', async () => {
      await ctx.t.runJob('rollup-refresh');
      assert.equal(await rolledUp('rollup_1m'), 96);
      assert.equal(await rolledUp('rollup_1d'), 96);
      const from = new Date(dayStart(20)).toISOString(),
        to = new Date(dayStart(19)).toISOString();
      const q = await ctx.t.get(
        `/api/v1/metrics/query?metric=ret&from=${from}&to=${to}&granularity=1h&aggregation=avg`,
      );
      assert.equal(q.status, 200, q.body);
      assert.equal(q.json.rollup, '1h');
      assert.equal(q.json.data_points.length, 24);
      assert.ok(q.json.data_points.every((d: { value: number }) => d.value === 20));
    });

    it('is idempotent: a second run drops nothing', async () => {
      const run = await ctx.t.runJob('retention');
      assert.equal(run.details.dropped, 0);
      assert.equal(await rawPoints(), 48);
    });

    it('is safe to run twice at once', async () => {
      await setConfig({ storage: { retention_days: 30 } });
      await ingest(ctx.t, hourly(12, 12));
      await setConfig({ storage: { retention_days: 7 } });
      const db = ctx.t.app.get(Database);
      const retention = ctx.t.app.get(RetentionService);
      // Straight into the service on two connections, past the job's own lock.
      const runs = await Promise.all([
        db.withWriteClient((c) => retention.apply(c)),
        db.withWriteClient((c) => retention.apply(c)),
      ]);
      assert.deepEqual(runs.map((r) => r.dropped).sort(), [0, 1]);
      assert.equal(await rawPoints(), 48);
      // Through the API: the second request joins the run in progress.
      const [a, b] = await Promise.all([ctx.t.runJob('retention'), ctx.t.runJob('retention')]);
      assert.equal(a.started_at, b.started_at);
    });

    it('drops rollups past their own retention, whole chunks/partitions only', async () => {
      const cutoff = Date.now() - 8 * DAY;
      const recent = await count(
        `SELECT coalesce(sum(count), 0)::int AS n FROM rollup_1m WHERE bucket >= '${new Date(cutoff).toISOString()}'`,
      );
      await setConfig({ storage: { rollup_retention_days: 8 } });
      const run = await ctx.t.runJob('retention');
      const r1m = report(run, 'rollup_1m');
      assert.equal(r1m.layout, ctx.flavour === 'timescaledb' ? 'continuous_aggregate' : 'partitioned');
      assert.equal(r1m.retention_days, 8);
      assert.equal(
        await count(
          `SELECT coalesce(sum(count), 0)::int AS n FROM rollup_1m WHERE bucket >= '${new Date(cutoff).toISOString()}'`,
        ),
        recent,
      );
      if (ctx.flavour === 'postgresql') {
        // Daily partitions: the days 20 and 12 (rolled up before) are gone with their partitions.
        assert.ok(r1m.dropped.length >= 1);
        assert.equal(
          await count(
            `SELECT count(*)::int AS n FROM rollup_1m WHERE bucket < '${new Date(dayStart(9)).toISOString()}'`,
          ),
          0,
        );
      }
      const again = await ctx.t.runJob('retention');
      assert.equal(again.details.dropped, 0);
    });

    it('lists its schedule and what it did', async () => {
      const jobs = (await ctx.t.get('/api/v1/system/jobs')).json.jobs;
      const job = jobs.find((j: { name: string }) => j.name === 'retention');
      assert.equal(job.schedule, 'every 1h');
      assert.equal(job.last_run.outcome, 'ok');
      assert.ok(Array.isArray(job.last_run.details.tables));
    });

    it('stops dropping once the retention is raised while it runs, also through another instance', async () => {
      const older = (ago: number) => hourly(ago).map((p) => ({ ...p, metric: 'ret_raised' }));
      await setConfig({ storage: { retention_days: 30, rollup_retention_days: 0 } });
      await ingest(ctx.t, [...older(25), ...older(18), ...older(12)]);
      await setConfig({ storage: { retention_days: 7 } });
      const repo = ctx.t.app.get(RetentionRepository);
      const drop = repo.dropPartition.bind(repo);
      let drops = 0;
      repo.dropPartition = async (...a: Parameters<typeof repo.dropPartition>) => {
        const done = await drop(...a);
        // After the first drop another instance raises the retention to 30 days (its PUT: the stored row).
        if (a[1] === 'points' && ++drops === 1)
          await ctx.t.sql.query(
            `UPDATE settings SET document = document || '{"storage.retention_days": 30}'::jsonb, version = version + 1 WHERE id = 1`,
          );
        return done;
      };
      try {
        const run = await ctx.t.runJob('retention');
        const points = report(run, 'points');
        if (ctx.flavour === 'timescaledb') return; // one drop_chunks call: nothing to stop between
        assert.equal(points.dropped.length, 1, JSON.stringify(points));
        const left = await count(
          `SELECT count(*)::int AS n FROM points p JOIN series s ON s.id = p.series_id WHERE s.metric = 'ret_raised'`,
        );
        assert.equal(left, 48, 'the 18- and 12-day-old days are kept under the raised retention');
        assert.equal((await ctx.t.get('/api/v1/config')).json.storage.retention_days, 30);
      } finally {
        repo.dropPartition = drop;
      }
    });
  },
  { METRICS_RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '60' },
);
