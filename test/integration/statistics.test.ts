import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { max, mean, median, min, quantile, sampleStandardDeviation } from 'simple-statistics';
import { close, ingest, KnownPoint, prng } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const HOUR = 3_600_000;
const H0 = Math.floor((Date.now() - 4 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

function dataset(): KnownPoint[] {
  const rnd = prng(11);
  const pts: KnownPoint[] = [];
  for (let t = H0, i = 0; t < H0 + 2 * HOUR; t += 7_000, i++) {
    pts.push({
      metric: 'latency',
      source: 'api',
      tags: { region: 'eu' },
      t,
      v: Math.round(Math.exp(3 + rnd()) * 1000) / 1000,
    });
    if (i % 3 === 0)
      pts.push({
        metric: 'latency',
        source: 'db',
        tags: { region: 'us' },
        t: t + 1,
        v: Math.round(rnd() * 5000) / 100 - 10,
      });
  }
  return pts;
}

describeEachFlavour('summary statistics', (ctx) => {
  const points = dataset();
  before(() => ingest(ctx.t, points));

  async function checkAgainstSimpleStatistics(qs: string, values: number[]) {
    const r = await ctx.t.get(`/api/v1/metrics/summary?${qs}&percentiles=75,99.9`);
    assert.equal(r.status, 200, r.body);
    const s = r.json.statistics;
    assert.equal(s.count, values.length);
    assert.equal(s.min, min(values));
    assert.equal(s.max, max(values));
    assert.ok(close(s.avg, mean(values)), `avg ${s.avg} vs ${mean(values)}`);
    assert.ok(close(s.median, median(values)), `median ${s.median} vs ${median(values)}`);
    assert.ok(
      close(s.std_dev, sampleStandardDeviation(values)),
      `std_dev ${s.std_dev} vs ${sampleStandardDeviation(values)}`,
    );
    for (const p of [50, 75, 90, 95, 99, 99.9]) {
      assert.ok(
        close(s.percentiles[`p${p}`], quantile(values, p / 100)),
        `p${p} ${s.percentiles[`p${p}`]} vs ${quantile(values, p / 100)}`,
      );
    }
    return r.json;
  }

  it('computes count, min, max, avg, median, sample std_dev and percentiles exactly as simple-statistics does', async () => {
    const from = H0 + 600_000,
      to = H0 + HOUR + 1_234_000;
    const inRange = (p: KnownPoint) => p.t >= from && p.t < to;
    const json = await checkAgainstSimpleStatistics(
      `metric=latency&from=${iso(from)}&to=${iso(to)}`,
      points.filter(inRange).map((p) => p.v),
    );
    assert.equal(json.series_count, 2);
    assert.deepEqual(json.time_range, { from: iso(from), to: iso(to) });
    const micro = await ctx.t.get(
      '/api/v1/metrics/summary?metric=latency&from=2024-01-15T10:00:00.000123Z&to=2024-01-15T11:00:00.5Z',
    );
    assert.deepEqual(
      micro.json.time_range,
      { from: '2024-01-15T10:00:00.000123Z', to: '2024-01-15T11:00:00.500Z' },
      'the microseconds asked for are shown as asked',
    );
    assert.deepEqual(Object.keys(json.statistics.percentiles), ['p50', 'p75', 'p90', 'p95', 'p99', 'p99.9']);
    await checkAgainstSimpleStatistics(
      `metric=latency&source=db&from=${iso(from)}&to=${iso(to)}`,
      points.filter((p) => inRange(p) && p.source === 'db').map((p) => p.v),
    );
    await checkAgainstSimpleStatistics(
      `metric=latency&tags=region:eu&from=${iso(H0)}&to=${iso(H0 + 2 * HOUR)}`,
      points.filter((p) => p.tags.region === 'eu').map((p) => p.v),
    );
  });

  it('answers the reference shape', async () => {
    const r = await ctx.t.get(`/api/v1/metrics/summary?metric=latency&source=api&from=${iso(H0)}&to=${iso(H0 + HOUR)}`);
    assert.equal(r.json.metric, 'latency');
    assert.equal(r.json.source, 'api');
    for (const k of ['count', 'min', 'max', 'avg', 'median', 'std_dev', 'percentiles'])
      assert.ok(k in r.json.statistics, k);
    assert.deepEqual(Object.keys(r.json.statistics.percentiles), ['p50', 'p90', 'p95', 'p99']);
  });

  it('answers an empty range with count 0 and nulls, not an error', async () => {
    const r = await ctx.t.get(
      `/api/v1/metrics/summary?metric=latency&from=${iso(H0 - 5 * HOUR)}&to=${iso(H0 - 4 * HOUR)}`,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.statistics, {
      count: 0,
      min: null,
      max: null,
      avg: null,
      median: null,
      std_dev: null,
      percentiles: { p50: null, p90: null, p95: null, p99: null },
    });
    const none = await ctx.t.get(
      `/api/v1/metrics/summary?metric=latency&tags=region:mars&from=${iso(H0)}&to=${iso(H0 + HOUR)}`,
    );
    assert.equal(none.json.statistics.count, 0);
    const single = await ctx.t.get(
      `/api/v1/metrics/summary?metric=latency&source=api&from=${iso(H0)}&to=${iso(H0 + 1)}`,
    );
    assert.equal(single.json.statistics.count, 1);
    assert.equal(single.json.statistics.std_dev, null, 'the sample deviation of one point is undefined');
  });

  it('answers bad parameters with 400 naming them, an unknown metric with 404', async () => {
    for (const [qs, parameter] of [
      ['metric=latency&percentiles=abc', 'percentiles'],
      ['metric=latency&percentiles=101', 'percentiles'],
      ['metric=latency&from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z', 'from'],
      ['metric=latency&tags=novalue', 'tags'],
      ['', 'metric'],
    ]) {
      const r = await ctx.t.get(`/api/v1/metrics/summary?${qs}`);
      assert.equal(r.status, 400, qs);
      assert.equal(r.json.error.details.parameter, parameter, qs);
    }
    assert.equal((await ctx.t.get('/api/v1/metrics/summary?metric=nope')).status, 404);
  });
});
