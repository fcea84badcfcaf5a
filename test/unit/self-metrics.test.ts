import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { DAY, HOUR, MINUTE } from '../../src/common/time.js';
import {
  addSample,
  bucketIndex,
  delta,
  emptyFigures,
  emptySample,
  errorKey,
  LATENCY_BUCKETS,
  performanceOf,
  quantile,
  Sample,
  samplePoints,
  statusClass,
  StoredReader,
} from '../../src/monitoring/figures.js';
import { dashboardExpressions, grafanaDashboard } from '../../src/monitoring/grafana-dashboard.js';
import { parsePeriod, parseResolution, redactedUrl } from '../../src/monitoring/monitoring.service.js';
import { parseExposition, sampleValue } from '../support/prom-text.js';

/** Reads samplePoints' output back as the repository would give it: each point its own bucket (sum = min = max = value). */
function roundTrip(...samples: Sample[]): Sample {
  const r = new StoredReader();
  for (const s of samples) for (const p of samplePoints(s, 'h:1')) r.add(p.metric, p.tags, p.value, p.value, p.value);
  return r.finish();
}

function busySample(): Sample {
  const s = emptySample();
  s.seconds = 60;
  s.requests['2xx'] = 7;
  s.requests['4xx'] = 2;
  s.requests['5xx'] = 1;
  s.buckets[0] = 3;
  s.buckets[5] = 6;
  s.buckets[LATENCY_BUCKETS.length] = 1;
  s.durationSum = 45.2;
  s.min = 0.0004;
  s.max = 42;
  s.requestBytes = 100;
  s.responseBytes = 900;
  s.errors.set(errorKey('POST', '/api/v1/metrics', 400, 'INVALID_REQUEST'), 2);
  s.errors.set(errorKey('GET', '/api/v1/metrics/query', 504, 'QUERY_TIMEOUT'), 1);
  s.ingestPoints = 500;
  s.streamMessages = 12;
  s.jobRuns.set('rollup-refresh\u0000ok', 2);
  s.webhooks.set('delivered', 3);
  return s;
}

describe('self-metrics figures', () => {
  it('classes statuses and latencies', () => {
    assert.deepEqual([100, 204, 301, 404, 429, 500, 503, 599].map(statusClass), [
      '1xx',
      '2xx',
      '3xx',
      '4xx',
      '4xx',
      '5xx',
      '5xx',
      '5xx',
    ]);
    assert.equal(bucketIndex(0), 0);
    assert.equal(bucketIndex(0.001), 0, 'a bound belongs to its bucket (le)');
    assert.equal(bucketIndex(0.0011), 1);
    assert.equal(bucketIndex(30), LATENCY_BUCKETS.length - 1);
    assert.equal(bucketIndex(31), LATENCY_BUCKETS.length, '+Inf');
  });

  it('takes the difference of two snapshots, never negative, leaving out what did not move', () => {
    const a = emptyFigures(),
      b = emptyFigures();
    a.requests['2xx'] = 5;
    b.requests['2xx'] = 9;
    a.errors.set('x', 2);
    b.errors.set('x', 2);
    b.errors.set('y', 1);
    b.jobRuns.set('j\u0000ok', 1);
    const d = delta(b, a);
    assert.equal(d.requests['2xx'], 4);
    assert.deepEqual([...d.errors], [['y', 1]]);
    assert.deepEqual([...d.jobRuns], [['j\u0000ok', 1]]);
    assert.equal(delta(a, b).requests['2xx'], 0);
  });

  it('stores an interval as points and reads it back unchanged', () => {
    const s = busySample();
    const points = samplePoints(s, 'h:1');
    assert.ok(points.every((p) => p.tags.instance === 'h:1' && Number.isFinite(p.value)));
    const buckets = points.filter((p) => p.metric === 'timescope_http_request_duration_bucket');
    assert.equal(buckets.length, LATENCY_BUCKETS.length + 1);
    assert.deepEqual(buckets.at(-1), {
      metric: 'timescope_http_request_duration_bucket',
      unit: 'requests',
      value: 10,
      tags: { instance: 'h:1', le: '+Inf' },
    });
    const back = roundTrip(s);
    assert.deepEqual(
      { ...back, errors: [...back.errors], jobRuns: [...back.jobRuns], webhooks: [...back.webhooks] },
      { ...s, errors: [...s.errors], jobRuns: [...s.jobRuns], webhooks: [...s.webhooks] },
    );
  });

  it('an empty interval is only its length', () => {
    const s = emptySample();
    s.seconds = 60;
    assert.deepEqual(samplePoints(s, 'h:1'), [
      { metric: 'timescope_interval_seconds', unit: 's', value: 60, tags: { instance: 'h:1' } },
    ]);
  });

  it('sums of stored intervals equal the sum of the intervals (cumulative buckets included)', () => {
    const a = busySample(),
      b = busySample();
    b.buckets[2] = 4;
    b.min = 0.0001;
    b.max = 50;
    const expected = addSample(addSample(emptySample(), a), b);
    const back = roundTrip(a, b);
    assert.deepEqual(back.buckets, expected.buckets);
    assert.equal(back.min, 0.0001);
    assert.equal(back.max, 50);
    assert.equal(back.seconds, 120);
    assert.equal(back.errors.get(errorKey('POST', '/api/v1/metrics', 400, 'INVALID_REQUEST')), 4);
  });

  it('interpolates quantiles inside buckets, within the fastest and slowest request', () => {
    const b = new Array(LATENCY_BUCKETS.length + 1).fill(0);
    assert.equal(quantile(0.5, b, Infinity, -Infinity), null);
    b[4] = 10; // (10 ms, 25 ms]
    const near = (a: number | null, b: number, why?: string) =>
      assert.ok(a !== null && Math.abs(a - b) < 1e-12, `${a} ≠ ${b} ${why ?? ''}`);
    near(quantile(0.5, b, Infinity, -Infinity), 0.0175);
    near(quantile(0.5, b, 0.02, 0.022), 0.021, 'bounded by the fastest and slowest');
    near(quantile(1, b, 0.02, 0.022), 0.022);
    const inf = new Array(LATENCY_BUCKETS.length + 1).fill(0);
    inf[LATENCY_BUCKETS.length] = 2;
    assert.equal(quantile(0.5, inf, 40, 50), 45, 'the +Inf bucket ends at the slowest request');
  });

  it('summarises a sample as the reference does, and says null where there is nothing to divide', () => {
    const p = performanceOf(busySample());
    assert.equal(p.requests, 10);
    assert.equal(p.response_times!.mean, 4520);
    assert.equal(p.response_times!.min, 0.4);
    assert.equal(p.response_times!.max, 42000);
    assert.deepEqual(p.error_rates, { client_errors: 0.2, server_errors: 0.1, timeout_errors: 0.1 });
    assert.equal(p.throughput.requests_per_second, 0.167);
    assert.equal(p.throughput.messages_per_second, 8.333);
    assert.equal(p.throughput.bytes_per_second, 16.667);
    const empty = performanceOf(emptySample());
    assert.equal(empty.response_times, null);
    assert.equal(empty.throughput.requests_per_second, null);
    assert.equal(empty.error_rates.client_errors, null);
  });
});

describe('monitoring parameters', () => {
  it('periods: the reference four and other durations, from a minute to 400 days', () => {
    assert.deepEqual(parsePeriod(undefined), { label: '24h', ms: DAY });
    assert.deepEqual(parsePeriod('1h'), { label: '1h', ms: HOUR });
    assert.deepEqual(parsePeriod('7d'), { label: '7d', ms: 7 * DAY });
    assert.deepEqual(parsePeriod('30d'), { label: '30d', ms: 30 * DAY });
    assert.deepEqual(parsePeriod('90m'), { label: '90m', ms: 90 * MINUTE });
    for (const bad of ['0h', '30s', '401d', 'week', '-1h']) assert.throws(() => parsePeriod(bad), /period/, bad);
  });

  it('resolutions: minute, hour, day, defaulting to a few hundred buckets; never past QUERY_MAX_BUCKETS', () => {
    assert.equal(parseResolution(undefined, HOUR, 11_000).label, 'minute');
    assert.equal(parseResolution(undefined, DAY, 11_000).label, 'hour');
    assert.equal(parseResolution(undefined, 7 * DAY, 11_000).label, 'hour');
    assert.equal(parseResolution(undefined, 30 * DAY, 11_000).label, 'day');
    assert.equal(parseResolution('minute', 7 * DAY, 11_000).ms, MINUTE);
    assert.throws(() => parseResolution('minute', 30 * DAY, 11_000), /QUERY_MAX_BUCKETS/);
    assert.throws(() => parseResolution('second', HOUR, 11_000), /resolution/);
  });

  it('shows a connection string without its password or parameters', () => {
    assert.equal(
      redactedUrl('postgres://app:s3cr%40t@db.example:5432/timescope?sslmode=require&password=x'),
      'postgres://app@db.example:5432/timescope',
    );
    assert.equal(redactedUrl('postgresql://localhost/ts'), 'postgresql://localhost/ts');
    assert.equal(redactedUrl(undefined), null);
    assert.equal(redactedUrl('not a url :// at all'), '(not a URL)');
  });
});

describe('the Grafana dashboard', () => {
  it('has a panel per figure, each query scoped to the chosen Prometheus job', () => {
    const d = grafanaDashboard();
    assert.equal(d.uid, 'timescope-self');
    const ids = d.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of d.panels)
      for (const t of p.targets)
        assert.doesNotMatch(t.expr.replace(/\{job=~"\$job"\}/g, ''), /timescope_[a-z_]+\{/, 'one selector per series');
    for (const e of dashboardExpressions()) assert.ok(!e.includes('$job'));
  });
});

describe('the strict Prometheus text reader', () => {
  it('accepts what prom-client writes, escapes and all', async () => {
    const registry = new Registry();
    const registers = [registry];
    new Counter({
      name: 'a_total',
      help: 'with "quotes" and a \\ backslash\nand a newline',
      labelNames: ['v'],
      registers,
    }).inc({ v: 'x"y\\z\nw' }, 3);
    new Gauge({ name: 'b', help: 'gauge', registers }).set(-1.5e-7);
    const h = new Histogram({ name: 'c_seconds', help: 'h', labelNames: ['r'], buckets: [0.1, 1], registers });
    h.observe({ r: '/x' }, 0.05);
    h.observe({ r: '/x' }, 5);
    new Summary({ name: 'd', help: 's', registers }).observe(1);
    new Gauge({ name: 'e', help: 'nan', registers }).set(NaN);
    const families = parseExposition(await registry.metrics());
    assert.equal(sampleValue(families, 'a_total', { v: 'x"y\\z\nw' }), 3);
    assert.equal(families.get('a_total')!.help, 'with "quotes" and a \\ backslash\nand a newline');
    assert.equal(sampleValue(families, 'c_seconds_bucket', { le: '+Inf', r: '/x' }), 2);
    assert.equal(families.get('d')!.type, 'summary');
    assert.ok(Number.isNaN(sampleValue(families, 'e')));
  });

  it('refuses what Prometheus would refuse', () => {
    const bad: Array<[string, RegExp]> = [
      ['a 1', /newline/],
      ['# TYPE a counter\na -1\n', /counter/],
      ['# TYPE a gauge\na{b="c} 1\n', /unterminated/],
      ['a{b="\\t"} 1\n', /escape/],
      ['a{1b="c"} 1\n', /label name/],
      ['a{b="c",b="d"} 1\n', /twice/],
      ['a one\n', /not a number/],
      ['a 1\na 2\n', /twice/],
      ['a 1\nb 1\na{x="y"} 2\n', /one group/],
      ['a 1\n# TYPE a gauge\n', /after its samples/],
      ['# TYPE a gauge\n# TYPE a counter\n', /second TYPE/],
      ['# TYPE a widget\n', /unknown type/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /decrease/],
      ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /\+Inf/],
      ['# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /_count/],
      ['9a 1\n', /metric name/],
    ];
    for (const [text, why] of bad) assert.throws(() => parseExposition(text), why, JSON.stringify(text));
  });
});
