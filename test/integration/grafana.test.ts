import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { expectedBuckets, ingest, KnownPoint } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

/**
 * Grafana's PostgreSQL datasource sends SQL with its macros expanded by its backend
 * (notes/ecosystem.md §1.2). These are the expansions of the README's queries, run against our
 * views exactly as Grafana would send them, with the TimescaleDB toggle off and on.
 */
describeEachFlavour('Grafana SQL', (ctx) => {
  const H0 = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000;
  const points: KnownPoint[] = [];
  for (let t = H0; t < H0 + 2 * 3_600_000; t += 10_000) {
    points.push({ metric: 'cpu_usage', source: 'a', tags: { host: 'h1' }, t, v: (t / 10_000) % 50 });
    points.push({ metric: 'cpu_usage', source: 'b', tags: { host: 'h2' }, t, v: 100 - ((t / 10_000) % 30) });
  }
  const from = new Date(H0).toISOString().replace('.000', ''), to = new Date(H0 + 2 * 3_600_000 - 1).toISOString();
  before(async () => {
    await ingest(ctx.t, points);
    await ctx.t.runJob('rollup-refresh');
  });

  it('answers $__timeGroupAlias(time, $__interval) / $__timeFilter(time) over the metrics view', async () => {
    const groups = [`floor(extract(epoch from time)/300)*300 AS "time"`];
    if (ctx.flavour === 'timescaledb') groups.push(`time_bucket('300.000s',time) AS "time"`);
    const want = expectedBuckets(points, H0, H0 + 2 * 3_600_000, 300_000, 'avg');
    for (const g of groups) {
      const r = await ctx.t.sql.query(
        `SELECT ${g}, avg(value) FROM metrics WHERE time BETWEEN '${from}' AND '${to}' AND metric = 'cpu_usage' GROUP BY 1 ORDER BY 1`,
      );
      assert.equal(r.rows.length, want.length);
      r.rows.forEach((row, i) => {
        const t = row.time instanceof Date ? row.time.getTime() : Number(row.time) * 1000;
        assert.equal(t, want[i].t);
        assert.ok(Math.abs(row.avg - want[i].v) < 1e-9);
      });
    }
  });

  it('gives one series per source with a string "metric" column, and reads the rollup views', async () => {
    const r = await ctx.t.sql.query(
      `SELECT floor(extract(epoch from time)/3600)*3600 AS "time", source AS metric, max(value) AS value
       FROM metrics WHERE time BETWEEN '${from}' AND '${to}' AND metric = 'cpu_usage' GROUP BY 1, 2 ORDER BY 1`,
    );
    assert.equal(r.rows.length, 4);
    const rollup = await ctx.t.sql.query(
      `SELECT floor(extract(epoch from time)/3600)*3600 AS "time", source AS metric, max(max) AS value
       FROM metrics_1h WHERE time BETWEEN '${from}' AND '${to}' AND metric = 'cpu_usage' GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    assert.deepEqual(
      rollup.rows.map((x) => [x.metric, x.value]),
      [...r.rows].sort((x, y) => x.time - y.time || x.metric.localeCompare(y.metric)).map((x) => [x.metric, x.value]),
    );
  });

  it('serves the dashboard annotation query from events', async () => {
    const r = await ctx.t.post('/api/v1/events', { kind: 'alert', source: 'a', level: 'warn', message: 'cpu_usage above 90' });
    assert.equal(r.status, 201, r.body);
    const since = new Date(Date.now() - 60_000).toISOString(), until = new Date(Date.now() + 60_000).toISOString();
    const a = await ctx.t.sql.query(
      `SELECT time, message AS text, kind || ',' || level AS tags FROM events WHERE time BETWEEN '${since}' AND '${until}' AND kind IN ('alert', 'service_status') ORDER BY time`,
    );
    assert.deepEqual(a.rows.map((x) => [x.text, x.tags]), [['cpu_usage above 90', 'alert,warn']]);
  });

  it('serves variable queries', async () => {
    assert.deepEqual((await ctx.t.sql.query(`SELECT DISTINCT metric FROM series ORDER BY 1`)).rows, [{ metric: 'cpu_usage' }]);
    const sources = await ctx.t.sql.query(`SELECT DISTINCT source FROM series WHERE metric = 'cpu_usage' AND source IN ('a','b') ORDER BY 1`);
    assert.deepEqual(sources.rows.map((x) => x.source), ['a', 'b']);
    const hosts = await ctx.t.sql.query(`SELECT DISTINCT tags->>'host' AS __value FROM series WHERE metric = 'cpu_usage' ORDER BY 1`);
    assert.deepEqual(hosts.rows.map((x) => x.__value), ['h1', 'h2']);
  });
});
