import assert from 'node:assert/strict';
import { it } from 'node:test';
import { REFRESH_AFTER_LATE_POINTS } from '../../src/storage/storage.jobs.js';
import { close, expectedBuckets, ingest, KnownPoint } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const STEP = 10_000;
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * A bulk load below the rollup watermark (plain PostgreSQL): the scheduled refresh runs only once
 * an hour here, so rollups that catch up within seconds show the writer's request for a refresh,
 * and one refresh re-aggregates the load's many late ranges merged per day.
 */
describeEachFlavour(
  'rollups after a bulk load',
  (ctx) => {
    const D0 = Math.floor((Date.now() - 4 * DAY) / DAY) * DAY;
    const points: KnownPoint[] = [];
    // Four series over about three days at 10 s: a little more than the writer's threshold.
    for (const source of ['a', 'b', 'c', 'd'])
      for (let t = D0 + HOUR; t < D0 + HOUR + Math.ceil(REFRESH_AFTER_LATE_POINTS / 4 + 1_000) * STEP; t += STEP)
        points.push({ metric: 'bulk', source, tags: {}, t, v: ((t / STEP) % 13) + source.charCodeAt(0) });
    const from = D0,
      to = D0 + 4 * DAY;

    type Job = { name: string; runs: number; last_run: { details: { vacuumed?: string[] } } | null };
    const refreshJob = async () => {
      const r = await ctx.t.get('/api/v1/system/jobs');
      assert.equal(r.status, 200, r.body);
      return (r.json.jobs as Job[]).find((j) => j.name === 'rollup-refresh')!;
    };
    const jobRuns = async () => (await refreshJob()).runs;

    it('are refreshed soon after the load, without waiting for the schedule', async () => {
      // After the scheduler's first run (at start) the watermark is now: everything loaded afterwards is late.
      await waitFor(async () => (await jobRuns()) >= 1, 15_000, 'the first scheduled refresh');
      const runsBefore = await jobRuns();
      await ingest(ctx.t, points);
      // The run that did it has ended (its VACUUM included), long before the schedule's next one.
      await waitFor(
        async () =>
          (await jobRuns()) > runsBefore &&
          (await ctx.t.sql.query(`SELECT count(*)::int AS n FROM rollup_invalidations`)).rows[0].n === 0 &&
          (await ctx.t.sql.query(`SELECT coalesce(sum(count), 0)::int AS n FROM rollup_1d`)).rows[0].n ===
            points.length,
        20_000,
        'the rollups to hold every loaded point',
      );
      // A refresh that large ends with VACUUM ANALYZE of the rollups and of the loaded days' partitions.
      const vacuumed = (await refreshJob()).last_run?.details.vacuumed ?? [];
      assert.ok(vacuumed.includes('rollup_1m'), `vacuumed: ${vacuumed.join(', ')}`);
      assert.ok(
        vacuumed.some((t) => t.startsWith('points_')),
        `vacuumed: ${vacuumed.join(', ')}`,
      );
      // Every tier holds exactly the raw points.
      for (const tier of ['rollup_1m', 'rollup_5m', 'rollup_1h', 'rollup_1d']) {
        const r = await ctx.t.sql.query(`SELECT sum(count)::int AS n, sum(sum)::float8 AS s FROM ${tier}`);
        assert.equal(r.rows[0].n, points.length, tier);
        assert.ok(
          close(
            r.rows[0].s,
            points.reduce((a, p) => a + p.v, 0),
          ),
          tier,
        );
      }
    });

    it('serve queries from the rollups with the raw numbers', async () => {
      for (const [g, step, tier] of [
        ['5m', 300_000, '5m'],
        ['1h', HOUR, '1h'],
      ] as const) {
        for (const agg of ['avg', 'max', 'count'] as const) {
          const r = await ctx.t.get(
            `/api/v1/metrics/query?metric=bulk&from=${iso(from)}&to=${iso(to)}&granularity=${g}&aggregation=${agg}`,
          );
          assert.equal(r.status, 200, r.body);
          assert.equal(r.json.rollup, tier);
          const want = expectedBuckets(points, from, to, step, agg);
          assert.equal(r.json.data_points.length, want.length);
          r.json.data_points.forEach((d: { timestamp: string; value: number }, i: number) => {
            assert.equal(Date.parse(d.timestamp), want[i].t);
            assert.ok(close(d.value, want[i].v), `${agg} ${g} ${d.timestamp}: ${d.value} != ${want[i].v}`);
          });
        }
      }
    });

    it('a late point read before its refresh is still exact (the plan falls back to raw points)', async () => {
      const late: KnownPoint = { metric: 'bulk', source: 'a', tags: {}, t: D0 + 2 * HOUR + 5_000, v: 1e6 };
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'a',
        metrics: [{ name: 'bulk', value: late.v, timestamp: late.t }],
      });
      assert.equal(r.status, 200, r.body);
      points.push(late);
      const q = await ctx.t.get(
        `/api/v1/metrics/query?metric=bulk&source=a&from=${iso(from)}&to=${iso(to)}&granularity=1h&aggregation=max`,
      );
      assert.equal(q.status, 200, q.body);
      const want = expectedBuckets(
        points.filter((p) => p.source === 'a'),
        from,
        to,
        HOUR,
        'max',
      );
      assert.deepEqual(
        q.json.data_points.map((d: { value: number }) => d.value),
        want.map((w) => w.v),
      );
    });
  },
  { JOBS_ENABLED: 'true', ROLLUP_REFRESH_SECONDS: '3600', METRICS_RETENTION_DAYS: '30' },
  { flavours: ['postgresql'] },
);
