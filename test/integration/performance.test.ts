import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isQueryRoute } from '../../src/performance/performance.service.js';
import { ingest, KnownPoint } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const HOUR = 3_600_000;

it('query routes are everything under /api/v1/metrics/ but ingest', () => {
  assert.ok(isQueryRoute('/api/v1/metrics/query'));
  assert.ok(isQueryRoute('/api/v1/metrics/query/multi'));
  assert.ok(isQueryRoute('/api/v1/metrics/names'));
  assert.ok(!isQueryRoute('/api/v1/metrics/batch'));
  assert.ok(!isQueryRoute('/api/v1/metrics'));
  assert.ok(!isQueryRoute('/health'));
  assert.ok(!isQueryRoute(undefined));
});

describeEachFlavour('system performance', (ctx) => {
  const t0 = Math.floor((Date.now() - 2 * 24 * HOUR) / HOUR) * HOUR;
  const points: KnownPoint[] = Array.from({ length: 500 }, (_, i) => ({
    metric: 'perf',
    source: 's',
    tags: {},
    t: t0 + i * 60_000,
    v: i,
  }));

  it('reports ingestion, storage and queries', async () => {
    await ingest(ctx.t, points);
    for (let i = 0; i < 3; i++)
      assert.equal((await ctx.t.get('/api/v1/metrics/query?metric=perf&from=now-3d&granularity=1h')).status, 200);
    await ctx.t.get('/api/v1/metrics/names');
    const r = await ctx.t.get('/api/v1/system/performance');
    assert.equal(r.status, 200, r.body);
    const { ingestion, storage, queries } = r.json;
    assert.equal(ingestion.total_metrics, 500);
    assert.match(ingestion.rate, /^\d+ metrics\/sec$/);
    assert.equal(ingestion.queue_size, 0);
    assert.equal(ingestion.queue_max, 500_000);
    assert.equal(storage.oldest_data, new Date(t0).toISOString());
    assert.equal(storage.retention_policy, '7 days');
    assert.equal(storage.rollup_retention_policy, '365 days');
    assert.ok(storage.total_size_bytes > 0);
    assert.equal(storage.compression_ratio, null);
    assert.equal(queries.queries_per_minute, 4);
    assert.match(queries.avg_response_time, /^\d+ms$/);
    assert.deepEqual(r.json.alerts, []);
  });

  it('flags crossed thresholds from the runtime configuration', async () => {
    assert.equal(
      (await ctx.t.request('PUT', '/api/v1/config', { alerting: { thresholds: { ingestion_rate: 1 } } })).status,
      200,
    );
    await ingest(
      ctx.t,
      points.map((p) => ({ ...p, metric: 'perf2' })),
    );
    await new Promise((r) => setTimeout(r, 1_100)); // the rate counts whole seconds
    const r = await ctx.t.get('/api/v1/system/performance');
    assert.deepEqual(
      r.json.alerts.map((a: { threshold: string }) => a.threshold),
      ['ingestion_rate'],
    );
    assert.equal((await ctx.t.request('PUT', '/api/v1/config', { alerting: { enabled: false } })).status, 200);
    assert.deepEqual((await ctx.t.get('/api/v1/system/performance')).json.alerts, []);
  });
});
