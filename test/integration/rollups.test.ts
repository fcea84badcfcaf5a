import assert from 'node:assert/strict';
import { it } from 'node:test';
import { close, expectedBuckets, ingest, KnownPoint } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

describeEachFlavour('rollups', (ctx) => {
  const D0 = Math.floor((Date.now() - 3 * DAY) / DAY) * DAY;
  const points: KnownPoint[] = [];
  for (let t = D0; t < D0 + 2 * DAY; t += 60_000)
    points.push({ metric: 'load', source: 'h', tags: {}, t, v: (t / 60_000) % 97 });

  const query = async (agg: string, g = '1h', from = D0, to = D0 + 2 * DAY) => {
    const r = await ctx.t.get(
      `/api/v1/metrics/query?metric=load&from=${iso(from)}&to=${iso(to)}&granularity=${g}&aggregation=${agg}`,
    );
    assert.equal(r.status, 200, r.body);
    return r.json;
  };
  const matches = async (agg: 'avg' | 'sum' | 'max' | 'count', g: string, step: number) => {
    const json = await query(agg, g);
    const want = expectedBuckets(points, D0, D0 + 2 * DAY, step, agg);
    assert.equal(json.data_points.length, want.length);
    json.data_points.forEach((d: { timestamp: string; value: number }, i: number) => {
      assert.equal(Date.parse(d.timestamp), want[i].t);
      assert.ok(close(d.value, want[i].v), `${agg} ${g} ${d.timestamp}: ${d.value} != ${want[i].v}`);
    });
    return json;
  };

  it('equal raw numbers at every tier after a refresh', async () => {
    await ingest(ctx.t, points);
    await ctx.t.runJob('rollup-refresh');
    for (const [g, step] of [
      ['1m', 60_000],
      ['5m', 300_000],
      ['1h', HOUR],
      ['1d', DAY],
      ['2d', 2 * DAY],
    ] as const) {
      for (const agg of ['avg', 'sum', 'max', 'count'] as const) {
        const json = await matches(agg, g, step);
        assert.ok(json.rollup, `${g} should be served by a rollup`);
      }
    }
    const rows = await ctx.t.sql.query(`SELECT sum(count)::int AS n FROM rollup_1d`);
    assert.equal(rows.rows[0].n, points.length);
  });

  it('take late and backfilled points into account', async () => {
    // A late point inside the materialised range and a whole backfilled hour a day earlier.
    const late: KnownPoint[] = [{ metric: 'load', source: 'h', tags: {}, t: D0 + 5 * HOUR + 30_000, v: 1000 }];
    for (let t = D0 + HOUR; t < D0 + 2 * HOUR; t += 60_000)
      late.push({ metric: 'load', source: 'h', tags: {}, t: t + 15_000, v: -5 });
    await ingest(ctx.t, late);
    points.push(...late);
    // Until the refresh re-aggregates them, queries fall back to raw points: still exact. On
    // TimescaleDB too: real-time aggregation shows only what lies above an aggregate's watermark.
    await matches('max', '1h', HOUR);
    await matches('avg', '5m', 300_000);
    const pending = await ctx.t.sql.query(`SELECT count(*)::int AS n FROM rollup_invalidations`);
    assert.equal(pending.rows[0].n, 1);
    const run = await ctx.t.runJob('rollup-refresh');
    assert.equal(run.details.invalidations, 1);
    assert.equal((await ctx.t.sql.query(`SELECT count(*)::int AS n FROM rollup_invalidations`)).rows[0].n, 0);
    if (ctx.flavour === 'postgresql') {
      // Every query reads rollup_invalidations: its dead rows are vacuumed away at once.
      assert.deepEqual(run.details.vacuumed, ['rollup_invalidations']);
    }
    for (const agg of ['avg', 'sum', 'max', 'count'] as const) {
      await matches(agg, '1h', HOUR);
      await matches(agg, '1d', DAY);
    }
    assert.ok((await query('max', '1h')).rollup);
  });

  it('are idempotent: refreshing again changes nothing', async () => {
    const before = await ctx.t.sql.query(`SELECT bucket, count, sum, min, max FROM rollup_1h ORDER BY bucket`);
    await ctx.t.runJob('rollup-refresh');
    const after = await ctx.t.sql.query(`SELECT bucket, count, sum, min, max FROM rollup_1h ORDER BY bucket`);
    assert.deepEqual(after.rows, before.rows);
  });
});
