import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { ingest, KnownPoint, prng } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Math.floor((Date.now() - 30 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const SPIKE = T0 + 600 * MIN;
const SHIFT = T0 + 1200 * MIN;

/** A minute series of cpu on two hosts: host a has a spike at SPIKE, host b a level shift at SHIFT. */
function dataset(): KnownPoint[] {
  const rnd = prng(5);
  const noise = () => (rnd() + rnd() + rnd() - 1.5) * 2;
  const pts: KnownPoint[] = [];
  for (let t = T0; t < T0 + 1500 * MIN; t += MIN) {
    pts.push({ metric: 'cpu', source: 'a', tags: { host: 'a' }, t, v: t === SPIKE ? 95 : 40 + noise() });
    pts.push({ metric: 'cpu', source: 'b', tags: { host: 'b' }, t, v: (t >= SHIFT ? 70 : 30) + noise() });
  }
  return pts;
}

/**
 * Issue 13: one day of minute points of a sine with a 6 h period (level 50, amplitude 20), uniform
 * noise in ±2 and +45 at three minutes: on a crest (07:30), where it rises steepest (12:00) and in a
 * trough (16:30); beside it, a flat series with the same noise and nothing else.
 */
const DAY0 = Math.floor((Date.now() - 3 * 24 * HOUR) / (24 * HOUR)) * 24 * HOUR;
const SINE_SPIKES = [450, 720, 990].map((m) => DAY0 + m * MIN);
const sineLevel = (t: number) => 50 + 20 * Math.sin((2 * Math.PI * (t - DAY0)) / (6 * HOUR));
function sineDataset(): KnownPoint[] {
  const rnd = prng(13);
  const pts: KnownPoint[] = [];
  for (let t = DAY0; t < DAY0 + 24 * HOUR; t += MIN) {
    pts.push({
      metric: 'room_temp',
      source: 'lab',
      tags: {},
      t,
      v: sineLevel(t) + (rnd() * 4 - 2) + (SINE_SPIKES.includes(t) ? 45 : 0),
    });
    pts.push({ metric: 'room_temp', source: 'flat', tags: {}, t, v: 50 + (rnd() * 4 - 2) });
  }
  return pts;
}

describeEachFlavour(
  'anomaly detection',
  (ctx) => {
    before(async () => {
      await ingest(ctx.t, dataset());
      await ingest(ctx.t, sineDataset());
    });
    const sineBody = (extra: Record<string, unknown>) => ({
      metric: 'room_temp',
      source: 'lab',
      from: iso(DAY0),
      to: iso(DAY0 + 24 * HOUR),
      ...extra,
    });

    it('issue 13: the reference body (isolation_forest, sensitivity 0.1) reports exactly the three spikes of a 6 h sine, against its local level', async () => {
      const r = await ctx.t.post(
        '/api/v1/metrics/anomalies',
        sineBody({ algorithm: 'isolation_forest', sensitivity: 0.1 }),
      );
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.points_analyzed, 1440);
      assert.deepEqual(
        r.json.anomalies.map((a: { timestamp: string }) => a.timestamp),
        SINE_SPIKES.map(iso),
      );
      for (const a of r.json.anomalies) {
        const level = sineLevel(Date.parse(a.timestamp));
        assert.ok(
          Math.abs(a.context.expected - level) < 3 && Math.abs(a.context.baseline_avg - level) < 3,
          `${a.timestamp}: ${JSON.stringify(a.context)}, the sine is at ${level}`,
        );
        assert.ok(Math.abs(a.context.deviation - 45) < 5 && a.context.band_high < a.value, JSON.stringify(a.context));
      }
      assert.equal(typeof r.json.parameters.detector.level_block, 'number');
    });

    it('issue 13: the other methods report the same three spikes and no crest or trough; flat noise gets nothing at sensitivity 0.1', async () => {
      for (const algorithm of ['zscore', 'mad', 'seasonal', 'auto']) {
        const r = await ctx.t.post('/api/v1/metrics/anomalies', sineBody({ algorithm, sensitivity: 0.1 }));
        assert.deepEqual(
          r.json.anomalies.map((a: { timestamp: string }) => a.timestamp),
          SINE_SPIKES.map(iso),
          algorithm,
        );
      }
      for (const algorithm of ['isolation_forest', 'zscore', 'mad', 'seasonal', 'auto']) {
        const r = await ctx.t.post(
          '/api/v1/metrics/anomalies',
          sineBody({ source: 'flat', algorithm, sensitivity: 0.1 }),
        );
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json.anomalies, [], algorithm);
      }
    });

    const body = (extra: Record<string, unknown> = {}) => ({
      metric: 'cpu',
      source: 'a',
      from: iso(T0),
      to: iso(T0 + 1500 * MIN),
      ...extra,
    });

    it('finds the spike with every algorithm and answers the reference shape', async () => {
      for (const algorithm of ['isolation_forest', 'zscore', 'mad', 'seasonal', 'auto']) {
        const r = await ctx.t.post('/api/v1/metrics/anomalies', body({ algorithm, sensitivity: 0.5 }));
        assert.equal(r.status, 200, r.body);
        const hit = r.json.anomalies.find((a: { timestamp: string }) => a.timestamp === iso(SPIKE));
        assert.ok(
          hit,
          `${algorithm}: ${JSON.stringify(r.json.anomalies.map((a: { timestamp: string }) => a.timestamp))}`,
        );
        assert.equal(hit.value, 95);
        assert.ok(hit.score >= 1);
        assert.ok(['low', 'medium', 'high', 'critical'].includes(hit.severity));
        for (const k of ['baseline_avg', 'deviation', 'expected', 'band_low', 'band_high'])
          assert.equal(typeof hit.context[k], 'number', k);
        assert.ok(hit.context.band_high < 95 && hit.context.deviation > 40);
        assert.equal(hit.source, 'a');
        assert.ok(r.json.total_anomalies <= 2, `${algorithm}: ${r.json.total_anomalies}`);
        assert.equal(r.json.total_anomalies, r.json.anomalies.length);
        assert.equal(typeof r.json.analysis_time_ms, 'number');
        assert.equal(r.json.points_analyzed, 1500);
        assert.equal(r.json.parameters.algorithm, algorithm);
        assert.equal(r.json.parameters.sensitivity, 0.5);
      }
    });

    it('shows the range asked for to the microsecond', async () => {
      const from = `${iso(T0).slice(0, -1)}250Z`;
      const r = await ctx.t.post('/api/v1/metrics/anomalies', body({ algorithm: 'mad', from }));
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(r.json.time_range, { from, to: iso(T0 + 1500 * MIN) });
    });

    it('reports a level shift once, at its start', async () => {
      const r = await ctx.t.post('/api/v1/metrics/anomalies', body({ source: 'b', algorithm: 'mad' }));
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.anomalies.length, 1, JSON.stringify(r.json.anomalies));
      assert.equal(r.json.anomalies[0].timestamp, iso(SHIFT));
      assert.ok(r.json.anomalies[0].episode.flagged_points > 1);
    });

    it('gives one answer to one request (seeded isolation forest)', async () => {
      const a = await ctx.t.post(
        '/api/v1/metrics/anomalies',
        body({ algorithm: 'isolation_forest', sensitivity: 0.9 }),
      );
      const b = await ctx.t.post(
        '/api/v1/metrics/anomalies',
        body({ algorithm: 'isolation_forest', sensitivity: 0.9 }),
      );
      assert.deepEqual(a.json.anomalies, b.json.anomalies);
      assert.equal(a.json.parameters.seed, 42);
    });

    it('analyses each matching series on its own when several match', async () => {
      const r = await ctx.t.post('/api/v1/metrics/anomalies', {
        metric: 'cpu',
        from: iso(T0),
        to: iso(T0 + 1500 * MIN),
        algorithm: 'mad',
      });
      assert.equal(r.json.series_analyzed, 2);
      assert.deepEqual(
        r.json.anomalies.map((a: { timestamp: string; source: string }) => [a.timestamp, a.source]),
        [
          [iso(SPIKE), 'a'],
          [iso(SHIFT), 'b'],
        ],
      );
    });

    it('analyses buckets with granularity and aggregation', async () => {
      const r = await ctx.t.post(
        '/api/v1/metrics/anomalies',
        body({ granularity: '5m', aggregation: 'max', algorithm: 'mad' }),
      );
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.points_analyzed, 300);
      assert.equal(r.json.parameters.granularity, '5m');
      assert.deepEqual(
        r.json.anomalies.map((a: { timestamp: string }) => a.timestamp),
        [iso(SPIKE)],
      );
      assert.equal(r.json.anomalies[0].value, 95);
    });

    it('filters by direction and minimum deviation', async () => {
      const below = await ctx.t.post('/api/v1/metrics/anomalies', body({ algorithm: 'mad', direction: 'below' }));
      assert.equal(below.json.total_anomalies, 0);
      const big = await ctx.t.post('/api/v1/metrics/anomalies', body({ algorithm: 'mad', min_deviation: 80 }));
      assert.equal(big.json.total_anomalies, 0);
      const rel = await ctx.t.post('/api/v1/metrics/anomalies', body({ algorithm: 'mad', min_deviation: '100%' }));
      assert.equal(rel.json.total_anomalies, 1);
      assert.equal(rel.json.parameters.min_deviation, '100%');
    });

    it('answers an empty range with no anomalies', async () => {
      const r = await ctx.t.post(
        '/api/v1/metrics/anomalies',
        body({ from: iso(T0 - 5 * HOUR), to: iso(T0 - 4 * HOUR) }),
      );
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.anomalies, []);
      assert.equal(r.json.points_analyzed, 0);
    });

    it('answers bad input with 400 naming the parameter, an unknown metric with 404', async () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ algorithm: 'prophet' }, 'algorithm'],
        [{ sensitivity: 0 }, 'sensitivity'],
        [{ sensitivity: 1.5 }, 'sensitivity'],
        [{ sensitivity: 'high' }, 'sensitivity'],
        [{ direction: 'sideways' }, 'direction'],
        [{ min_deviation: -1 }, 'min_deviation'],
        [{ min_deviation: 'lots' }, 'min_deviation'],
        [{ granularity: '7x' }, 'granularity'],
        [{ aggregation: 'max' }, 'aggregation'],
        [{ granularity: '1m', aggregation: 'median' }, 'aggregation'],
        [{ from: iso(T0 + HOUR), to: iso(T0) }, 'from'],
        [{ window: 'long' }, 'window'],
        [{ seed: -1 }, 'seed'],
        [{ sensitivty: 0.5 }, 'sensitivty'],
      ];
      for (const [extra, parameter] of cases) {
        const r = await ctx.t.post('/api/v1/metrics/anomalies', body(extra));
        assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.body}`);
        assert.equal(r.json.error.code, 'INVALID_QUERY');
        assert.equal(r.json.error.details.parameter, parameter, JSON.stringify(extra));
      }
      assert.equal(
        (await ctx.t.post('/api/v1/metrics/anomalies', { sensitivity: 0.5 })).json.error.details.parameter,
        'metric',
      );
      assert.equal((await ctx.t.post('/api/v1/metrics/anomalies', [1, 2])).status, 400);
      assert.equal((await ctx.t.post('/api/v1/metrics/anomalies', body({ metric: 'nope' }))).status, 404);
    });
  },
  {},
);

describeEachFlavour(
  'anomaly detection limits',
  (ctx) => {
    before(() =>
      ingest(
        ctx.t,
        dataset().filter((p) => p.source === 'a'),
      ),
    );

    it('refuses a range with more points than ANOMALY_MAX_POINTS, saying to narrow it or use a granularity', async () => {
      const r = await ctx.t.post('/api/v1/metrics/anomalies', {
        metric: 'cpu',
        from: iso(T0),
        to: iso(T0 + 1500 * MIN),
      });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.details.parameter, 'from');
      assert.match(r.json.error.message, /narrow the range.*granularity/);
      const bucketed = await ctx.t.post('/api/v1/metrics/anomalies', {
        metric: 'cpu',
        from: iso(T0),
        to: iso(T0 + 1500 * MIN),
        granularity: '10m',
      });
      assert.equal(bucketed.status, 200, bucketed.body);
      const narrow = await ctx.t.post('/api/v1/metrics/anomalies', {
        metric: 'cpu',
        from: iso(T0),
        to: iso(T0 + 900 * MIN),
      });
      assert.equal(narrow.status, 200);
    });

    it('runs big analyses in a worker thread, with the same answer as inline', async () => {
      // ANOMALY_WORKER_MIN_POINTS=0 here: every analysis of this app runs in a worker.
      const req = {
        metric: 'cpu',
        from: iso(T0),
        to: iso(T0 + 900 * MIN),
        algorithm: 'isolation_forest',
        window: '3h',
      };
      const r = await ctx.t.post('/api/v1/metrics/anomalies', req);
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(
        r.json.anomalies.map((a: { timestamp: string }) => a.timestamp),
        [iso(SPIKE)],
      );
      assert.equal(r.json.parameters.detector.window, 180);
      const { analyseSeries } = await import('../../src/anomalies/analyse.js');
      const pts = dataset().filter((p) => p.source === 'a' && p.t < T0 + 900 * MIN);
      const inline = analyseSeries(
        { times: Float64Array.from(pts, (p) => p.t), values: Float64Array.from(pts, (p) => p.v) },
        { algorithm: 'isolation_forest', sensitivity: 0.5, seed: 42, direction: 'both', windowMs: 3 * HOUR },
      );
      assert.deepEqual(
        r.json.anomalies.map(({ source: _s, tags: _t, ...a }: Record<string, unknown>) => a),
        inline.anomalies,
      );
    });
  },
  { ANOMALY_MAX_POINTS: '1000', ANOMALY_WORKER_MIN_POINTS: '0' },
);
