import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Agg, close, expectedBuckets, ingest, KnownPoint, prng } from '../support/fixtures.js';
import { Database } from '../../src/database/database.js';
import { BUCKET_ARRAYS, zipBuckets } from '../../src/storage/rollup-reader.js';
import { sqlClient } from '../support/databases.js';
import { describeEachFlavour } from '../support/suite.js';

const HOUR = 3_600_000;
const H0 = Math.floor((Date.now() - 5 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

function dataset(): KnownPoint[] {
  const rnd = prng(42);
  const pts: KnownPoint[] = [];
  for (let t = H0; t < H0 + 3 * HOUR; t += 10_000) {
    pts.push({
      metric: 'temp',
      source: 'a',
      tags: { region: 'eu', host: 'h1' },
      t,
      v: Math.round(rnd() * 10_000) / 100,
    });
    pts.push({
      metric: 'temp',
      source: 'b',
      tags: { region: 'us', host: 'h2' },
      t: t + 5_000,
      v: Math.round(rnd() * 10_000) / 100 - 20,
    });
    if (t % 30_000 === 0)
      pts.push({
        metric: 'temp',
        source: 'b',
        tags: { region: 'eu', host: 'h3' },
        t,
        v: Math.round(rnd() * 1000) / 10,
      });
    if (t % 60_000 === 0 && (t < H0 + HOUR || t >= H0 + 2 * HOUR))
      pts.push({ metric: 'humidity', source: 'a', tags: {}, t, v: 40 + Math.round(rnd() * 200) / 10 });
  }
  return pts;
}

describeEachFlavour('queries', (ctx) => {
  const points = dataset();
  const select = (metric: string, f: (p: KnownPoint) => boolean = () => true) =>
    points.filter((p) => p.metric === metric && f(p));

  async function check(params: Record<string, string | string[]>, expected: Array<{ t: number; v: number | null }>) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) qs.append(k, x);
    const r = await ctx.t.get(`/api/v1/metrics/query?${qs}`);
    assert.equal(r.status, 200, r.body);
    const got = r.json.data_points.map((d: { timestamp: string; value: number | null }) => ({
      t: Date.parse(d.timestamp),
      v: d.value,
    }));
    assert.equal(got.length, expected.length, `${qs}: ${got.length} buckets, expected ${expected.length}`);
    for (let i = 0; i < got.length; i++) {
      assert.equal(got[i].t, expected[i].t, `${qs}: bucket ${i}`);
      assert.ok(close(got[i].v, expected[i].v), `${qs}: bucket ${iso(got[i].t)} ${got[i].v} != ${expected[i].v}`);
    }
    assert.equal(r.json.total_points, expected.length);
    assert.equal(typeof r.json.query_time_ms, 'number');
    return r.json;
  }

  before(async () => {
    await ingest(ctx.t, points);
  });

  const aggs: Agg[] = ['avg', 'sum', 'min', 'max', 'count', 'first', 'last'];
  const ranges = [
    { name: 'aligned', from: H0, to: H0 + 3 * HOUR },
    { name: 'ragged', from: H0 + 150_000, to: H0 + 2 * HOUR + 427_000 },
  ];

  for (const phase of ['before the rollup refresh', 'after the rollup refresh']) {
    it(`computes every aggregation like an independent computation, ${phase}`, async () => {
      if (phase.startsWith('after')) await ctx.t.runJob('rollup-refresh');
      for (const agg of aggs) {
        for (const g of ['1m', '5m', '15m', '1h']) {
          const step = { '1m': 60_000, '5m': 300_000, '15m': 900_000, '1h': HOUR }[g]!;
          for (const range of ranges) {
            const json = await check(
              { metric: 'temp', from: iso(range.from), to: iso(range.to), granularity: g, aggregation: agg },
              expectedBuckets(select('temp'), range.from, range.to, step, agg),
            );
            assert.equal(json.series_count, 3);
            // One series: a tier's rows that are whole buckets are the answer without a merge.
            const one = await check(
              {
                metric: 'temp',
                source: 'a',
                from: iso(range.from),
                to: iso(range.to),
                granularity: g,
                aggregation: agg,
              },
              expectedBuckets(
                select('temp', (p) => p.source === 'a'),
                range.from,
                range.to,
                step,
                agg,
              ),
            );
            assert.equal(one.series_count, 1);
          }
        }
      }
    });
  }

  it('serves whole buckets from the rollup tier once refreshed', async () => {
    const r = await ctx.t.get(
      `/api/v1/metrics/query?metric=temp&from=${iso(H0)}&to=${iso(H0 + 3 * HOUR)}&granularity=1h&aggregation=max`,
    );
    assert.equal(r.json.rollup, '1h');
    const raw = await ctx.t.get(
      `/api/v1/metrics/query?metric=temp&from=${iso(H0)}&to=${iso(H0 + 3 * HOUR)}&granularity=1h&aggregation=last`,
    );
    assert.equal(raw.json.rollup, null);
  });

  it('filters by source and tags, a repeated key meaning either value', async () => {
    const from = H0,
      to = H0 + 3 * HOUR,
      step = 300_000;
    await check(
      { metric: 'temp', source: 'b', from: iso(from), to: iso(to), granularity: '5m' },
      expectedBuckets(
        select('temp', (p) => p.source === 'b'),
        from,
        to,
        step,
        'avg',
      ),
    );
    await check(
      { metric: 'temp', tags: 'region:eu', from: iso(from), to: iso(to), granularity: '5m' },
      expectedBuckets(
        select('temp', (p) => p.tags.region === 'eu'),
        from,
        to,
        step,
        'avg',
      ),
    );
    await check(
      {
        metric: 'temp',
        tags: ['region:eu', 'host:h3'],
        from: iso(from),
        to: iso(to),
        granularity: '5m',
        aggregation: 'max',
      },
      expectedBuckets(
        select('temp', (p) => p.tags.host === 'h3'),
        from,
        to,
        step,
        'max',
      ),
    );
    await check(
      {
        metric: 'temp',
        tags: ['host:h1', 'host:h2'],
        from: iso(from),
        to: iso(to),
        granularity: '5m',
        aggregation: 'count',
      },
      expectedBuckets(
        select('temp', (p) => p.tags.host !== 'h3'),
        from,
        to,
        step,
        'count',
      ),
    );
    const none = await ctx.t.get(`/api/v1/metrics/query?metric=temp&tags=region:mars&from=${iso(from)}&to=${iso(to)}`);
    assert.equal(none.status, 200);
    assert.equal(none.json.total_points, 0);
  });

  it('fills gaps: none, null, zero, previous, linear', async () => {
    const from = H0,
      to = H0 + 3 * HOUR,
      step = 15 * 60_000;
    const data = expectedBuckets(select('humidity'), from, to, step, 'avg');
    const q = (fill: string) => ({ metric: 'humidity', from: iso(from), to: iso(to), granularity: '15m', fill });
    await check(q('none'), data);
    const all = Array.from({ length: 12 }, (_, i) => from + i * step);
    const at = (t: number) => data.find((d) => d.t === t)?.v ?? null;
    await check(
      q('null'),
      all.map((t) => ({ t, v: at(t) })),
    );
    await check(
      q('zero'),
      all.map((t) => ({ t, v: at(t) ?? 0 })),
    );
    const last = data.filter((d) => d.t < H0 + HOUR).at(-1)!.v;
    await check(
      q('previous'),
      all.map((t) => ({ t, v: at(t) ?? last })),
    );
    const before = data.filter((d) => d.t < H0 + HOUR).at(-1)!;
    const after = data.find((d) => d.t >= H0 + 2 * HOUR)!;
    await check(
      q('linear'),
      all.map((t) => ({ t, v: at(t) ?? before.v + ((after.v - before.v) * (t - before.t)) / (after.t - before.t) })),
    );
  });

  it('answers the reference response shape', async () => {
    const r = await ctx.t.get(
      `/api/v1/metrics/query?metric=temp&source=a&from=${iso(H0)}&to=${iso(H0 + HOUR)}&granularity=5m&aggregation=avg&tags=region:eu`,
    );
    assert.equal(r.status, 200);
    for (const k of ['metric', 'source', 'granularity', 'aggregation', 'data_points', 'total_points', 'query_time_ms'])
      assert.ok(k in r.json, k);
    assert.equal(r.json.source, 'a');
    assert.equal(r.json.granularity, '5m');
    assert.equal(r.json.data_points.length, 12);
    assert.match(r.json.data_points[0].timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('chooses a granularity for auto and for none given', async () => {
    const r = await ctx.t.get(`/api/v1/metrics/query?metric=temp&from=${iso(H0)}&to=${iso(H0 + 3 * HOUR)}`);
    assert.equal(r.json.granularity, '15s');
    assert.ok(r.json.total_points <= 1000);
  });

  it('runs several queries at once', async () => {
    const r = await ctx.t.post('/api/v1/metrics/query/multi', {
      queries: [
        { metric: 'temp', source: 'a', aggregation: 'avg' },
        { metric: 'humidity', source: 'a', aggregation: 'max' },
        { metric: 'temp', tags: { region: 'us' }, aggregation: 'last' },
        { metric: 'nope' },
      ],
      from: iso(H0),
      to: iso(H0 + HOUR),
      granularity: '5m',
    });
    assert.equal(r.status, 200, r.body);
    const [a, b, c, d] = r.json.results;
    assert.equal(a.metric, 'temp');
    const same = (got: Array<{ value: number }>, want: Array<{ v: number }>) => {
      assert.equal(got.length, want.length);
      got.forEach((x, i) => assert.ok(close(x.value, want[i].v), `${x.value} != ${want[i].v}`));
    };
    same(
      a.data_points,
      expectedBuckets(
        select('temp', (p) => p.source === 'a'),
        H0,
        H0 + HOUR,
        300_000,
        'avg',
      ),
    );
    same(b.data_points, expectedBuckets(select('humidity'), H0, H0 + HOUR, 300_000, 'max'));
    same(
      c.data_points,
      expectedBuckets(
        select('temp', (p) => p.tags.region === 'us'),
        H0,
        H0 + HOUR,
        300_000,
        'last',
      ),
    );
    assert.equal(d.error.code, 'RESOURCE_NOT_FOUND');
    const bad = await ctx.t.post('/api/v1/metrics/query/multi', {
      queries: [{ metric: 'temp' }, { metric: 'temp', aggregation: 'median' }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details.parameter, 'queries[1].aggregation');
  });

  it('refuses a misspelt key in a multi-query body or one of its queries, as the GET routes do', async () => {
    for (const [body, parameter] of [
      [{ queries: [{ metric: 'cpu' }], granularty: '5m' }, 'granularty'],
      [{ queries: [{ metric: 'cpu' }, { metirc: 'cpu' }] }, 'queries[1].metirc'],
    ] as const) {
      const r = await ctx.t.post('/api/v1/metrics/query/multi', body);
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.details.parameter, parameter);
    }
  });

  it('takes a bound a multi query does not override from the shared range', async () => {
    const r = await ctx.t.post('/api/v1/metrics/query/multi', {
      queries: [
        { metric: 'temp', source: 'a', from: iso(H0 + HOUR) },
        { metric: 'temp', source: 'a', to: iso(H0 + HOUR) },
      ],
      from: iso(H0),
      to: iso(H0 + 3 * HOUR),
      granularity: '1h',
      aggregation: 'count',
      fill: 'zero',
    });
    assert.equal(r.status, 200, r.body);
    const [late, early] = r.json.results;
    const a = select('temp', (p) => p.source === 'a');
    assert.deepEqual(
      late.data_points.map((d: { value: number }) => d.value),
      expectedBuckets(a, H0 + HOUR, H0 + 3 * HOUR, HOUR, 'count').map((b) => b.v),
    );
    assert.deepEqual(
      early.data_points.map((d: { value: number }) => d.value),
      expectedBuckets(a, H0, H0 + HOUR, HOUR, 'count').map((b) => b.v),
    );
  });

  it('lists metric names with units, sources and tags', async () => {
    await ctx.t.post('/api/v1/metrics', {
      source: 'a',
      metrics: [{ name: 'temp', value: 1, unit: 'celsius', tags: { region: 'eu', host: 'h1' } }],
    });
    const names = await ctx.t.get('/api/v1/metrics/names');
    assert.deepEqual(
      names.json.metrics.map((m: { name: string }) => m.name),
      ['humidity', 'temp'],
    );
    assert.equal(names.json.metrics.find((m: { name: string }) => m.name === 'temp').unit, 'celsius');
    assert.equal(names.json.metrics.find((m: { name: string }) => m.name === 'temp').series_count, 3);
    const sources = await ctx.t.get('/api/v1/metrics/sources?metric=temp');
    assert.deepEqual(
      sources.json.sources.map((s: { name: string }) => s.name),
      ['a', 'b'],
    );
    const tags = await ctx.t.get('/api/v1/metrics/tags?metric=temp');
    assert.deepEqual(tags.json.tags, { host: ['h1', 'h2', 'h3'], region: ['eu', 'us'] });
    const search = await ctx.t.get('/api/v1/metrics/names?search=hum');
    assert.deepEqual(
      search.json.metrics.map((m: { name: string }) => m.name),
      ['humidity'],
    );
    // LIKE wildcards in the search are literal characters.
    assert.deepEqual((await ctx.t.get('/api/v1/metrics/names?search=%25')).json.metrics, []);
    assert.deepEqual((await ctx.t.get('/api/v1/metrics/names?search=_')).json.metrics, []);
    assert.equal(names.json.truncated, false);
    assert.equal(sources.json.truncated, false);
  });

  it('says when the catalogue holds more names or sources than the 10,000 it lists', async () => {
    await ctx.t.sql.query(
      `INSERT INTO series (metric, source, tags, tags_key, first_seen, last_seen)
       SELECT 'many' || g, 'many-src' || g, '{}', '{}', now(), now() FROM generate_series(1, 10001) g`,
    );
    try {
      const names = await ctx.t.get('/api/v1/metrics/names?search=many');
      assert.deepEqual([names.json.metrics.length, names.json.total, names.json.truncated], [10_000, 10_000, true]);
      const sources = await ctx.t.get('/api/v1/metrics/sources');
      assert.equal(sources.json.truncated, true);
      assert.equal(sources.json.sources.length, 10_000);
      assert.equal((await ctx.t.get('/api/v1/metrics/names?search=many1000')).json.truncated, false);
    } finally {
      await ctx.t.sql.query(`DELETE FROM series WHERE metric LIKE 'many%'`);
    }
  });

  it('answers bad queries with 400 INVALID_QUERY naming the parameter, unknown metrics with 404', async () => {
    const cases: Array<[string, string]> = [
      ['from=2024-01-15T11:00:00Z&to=2024-01-15T10:00:00Z', 'from'],
      ['aggregation=median2', 'aggregation'],
      ['aggregation=sum%3Bdrop', 'aggregation'],
      ['granularity=7x', 'granularity'],
      ['granularity=0s', 'granularity'],
      ['fill=spline', 'fill'],
      ['from=2019-01-01T00:00:00Z&to=2024-01-01T00:00:00Z&granularity=1m', 'granularity'],
      ['tags=novalue', 'tags'],
      ['from=abc', 'from'],
      // A parameter that takes one value, given twice, once silently meant the first.
      ['source=a&source=b', 'source'],
      ['granularity=1h&granularity=5m', 'granularity'],
      ['from=now-1h&from=now-2h', 'from'],
      ['aggregation=max&aggregation=min', 'aggregation'],
    ];
    for (const [qs, parameter] of cases) {
      const r = await ctx.t.get(`/api/v1/metrics/query?metric=temp&${qs}`);
      assert.equal(r.status, 400, qs);
      assert.equal(r.json.error.code, 'INVALID_QUERY', qs);
      assert.equal(r.json.error.details.parameter, parameter, qs);
    }
    const inverted = await ctx.t.get(
      '/api/v1/metrics/query?metric=temp&from=2024-01-15T11:00:00Z&to=2024-01-15T10:00:00Z',
    );
    assert.equal(inverted.json.error.details.issue, 'Start time must be before end time');
    const missing = await ctx.t.get('/api/v1/metrics/query');
    assert.equal(missing.json.error.details.parameter, 'metric');
    const unknown = await ctx.t.get('/api/v1/metrics/query?metric=nope');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, 'RESOURCE_NOT_FOUND');
    const empty = await ctx.t.get(`/api/v1/metrics/query?metric=temp&from=${iso(H0)}&to=${iso(H0)}`);
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.json.data_points, []);
  });

  it('answers NUL in any text parameter and times a date cannot hold with 400 naming the parameter, never 500', async () => {
    const cases: Array<[string, string]> = [
      ['query?metric=te%00mp', 'metric'],
      ['query?metric=temp&source=a%00', 'source'],
      ['query?metric=temp&tags=region:eu%00', 'tags'],
      ['query?metric=temp&tags=region:eu&tags=region:us%00', 'tags'],
      ['query?metric=temp&from=now-1h&to=99999999999999999999', 'to'],
      ['query?metric=temp&to=9000000000000000', 'to'],
      ['query?metric=temp&from=0000-01-01T00:00:00Z', 'from'],
      ['summary?metric=te%00mp', 'metric'],
      ['tags?metric=te%00mp', 'metric'],
      ['sources?metric=te%00mp', 'metric'],
      ['names?search=te%00', 'search'],
      ['names?search=a&search=b', 'search'],
    ];
    for (const [path, parameter] of cases) {
      const r = await ctx.t.get(`/api/v1/metrics/${path}`);
      assert.equal(r.status, 400, `${path}: ${r.body}`);
      assert.equal(r.json.error.details.parameter, parameter, path);
    }
    const multi: Array<[unknown, string]> = [
      [{ queries: [{ metric: 'temp', tags: { region: 'eu\u0000' } }] }, 'queries[0].tags'],
      [{ queries: [{ metric: 'temp', tags: { region: [] } }] }, 'queries[0].tags'],
      [{ queries: [{ metric: 'temp' }], from: 1e20 }, 'from'],
      [{ queries: [{ metric: 'temp' }], granularity: 5 }, 'granularity'],
    ];
    for (const [body, parameter] of multi) {
      const r = await ctx.t.post('/api/v1/metrics/query/multi', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.body}`);
      assert.equal(r.json.error.details.parameter, parameter);
    }
  });

  it('keeps the microseconds of from and to: [from, to) to the microsecond, as at ingest', async () => {
    const base = Math.floor((Date.now() - 2 * 3_600_000) / 60_000) * 60_000;
    // base + us microseconds, as ISO 8601 with six fraction digits
    const at = (us: number) =>
      new Date(base + Math.floor(us / 1000))
        .toISOString()
        .replace(/\.(\d{3})Z$/, (_, ms) => `.${ms}${String(us % 1000).padStart(3, '0')}Z`);
    const times = [100, 300, 500, 700, 900, 1000, 2000]; // microseconds after `base`
    const r = await ctx.t.post('/api/v1/metrics', {
      source: 'micro',
      metrics: times.map((us, i) => ({ name: 'micro', value: i + 1, timestamp: at(us) })),
    });
    assert.equal(r.status, 200, r.body);
    const count = async (from: string, to: string, aggregation = 'count') => {
      const q = await ctx.t.get(
        `/api/v1/metrics/query?metric=micro&from=${from}&to=${to}&granularity=1m&aggregation=${aggregation}`,
      );
      assert.equal(q.status, 200, q.body);
      return q.json.data_points[0]?.value;
    };
    assert.equal(await count(at(500), at(60_000_000)), 5);
    const echoed = await ctx.t.get(`/api/v1/metrics/query?metric=micro&from=${at(500)}&to=${at(60_000_000)}`);
    assert.equal(echoed.json.from, at(500)); // the range the answer covers, to the microsecond
    assert.equal(await count(at(0), at(500)), 2);
    assert.equal(await count(at(0), at(500), 'last'), 2);
    assert.equal(await count(at(301), at(60_000_000), 'first'), 3);
  });

  it('aggregates values up to the largest stored (1e296) without overflow, and refuses larger ones at ingest', async () => {
    const t0 = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
    const big = [1e155, 3e155, -2e155];
    let r = await ctx.t.post('/api/v1/metrics', {
      source: 'huge',
      metrics: [
        ...big.map((value, i) => ({ name: 'big', value, timestamp: t0 + i * 10_000 })),
        ...[1e296, 1e296].map((value, i) => ({ name: 'edge', value, timestamp: t0 + i * 10_000 })),
      ],
    });
    assert.equal(r.status, 200, r.body);
    r = await ctx.t.post('/api/v1/metrics', {
      source: 'huge',
      metrics: [{ name: 'edge', value: 1.7976931348623157e308 }],
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.details.field, 'metrics[0].value');
    // The rollup refresh sums them (a value near the largest double, twice, used to stop it for every series).
    await ctx.t.runJob('rollup-refresh');
    const range = `from=${new Date(t0).toISOString()}&to=${new Date(t0 + 60_000).toISOString()}`;
    r = await ctx.t.get(`/api/v1/metrics/query?metric=edge&${range}&granularity=1m&aggregation=sum`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.data_points[0].value, 2e296);
    // avg over raw points: a sum and a count (PostgreSQL's avg(float8) also sums squares, which overflow).
    r = await ctx.t.get(`/api/v1/metrics/query?metric=big&${range}&granularity=30s&aggregation=avg`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.data_points[0].value, (1e155 + 3e155 - 2e155) / 3);
    // The summary's standard deviation, scaled by the largest magnitude when its squares overflow.
    r = await ctx.t.get(`/api/v1/metrics/summary?metric=big&${range}`);
    assert.equal(r.status, 200, r.body);
    const mean = (1e155 + 3e155 - 2e155) / 3;
    const sd = Math.sqrt(big.reduce((a, v) => a + ((v - mean) / 1e155) ** 2, 0) / 2) * 1e155;
    assert.ok(Math.abs(r.json.statistics.std_dev - sd) / sd < 1e-12, `${r.json.statistics.std_dev} against ${sd}`);
    // A default `from` an hour before 0001-01-01T00:30Z stays in year 1.
    r = await ctx.t.get(`/api/v1/metrics/query?metric=big&to=0001-01-01T00:30:00Z`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.from, '0001-01-01T00:00:00.000Z');
  });

  it('reads bucket arrays back as the server wrote them: times before and after 2000, null, NaN, infinities, -0, out of order', async () => {
    // The bucket reads' arrays are binary timestamptz and float8 bytes (BUCKET_ARRAYS); a null value has its own code.
    const database = ctx.t.app.get(Database);
    const r = await database.readPool.query<{ ts: Buffer; vs: Buffer }>(
      `SELECT ${BUCKET_ARRAYS} FROM (SELECT to_timestamp(t / 1000) AS t, v FROM (VALUES
        (3e12::float8, 1.5::float8), (1e12, NULL), (2e12, 'NaN'), (4e12, 'Infinity'), (5e12, '-Infinity'), (6e12, '-0'),
        (-1e11, 1e-300), (946684800000, -123456.789012345), (1700000000123, 7), (253402300799000, 8)) x(t, v)) b`,
    );
    const rows = zipBuckets(r.rows[0].ts, r.rows[0].vs);
    assert.deepEqual(rows, [
      { t: -1e11, v: 1e-300 },
      { t: 946684800000, v: -123456.789012345 },
      { t: 1e12, v: null },
      { t: 1700000000123, v: 7 },
      { t: 2e12, v: NaN },
      { t: 3e12, v: 1.5 },
      { t: 4e12, v: Infinity },
      { t: 5e12, v: -Infinity },
      { t: 6e12, v: -0 },
      { t: 253402300799000, v: 8 },
    ]);
    assert.ok(Object.is(rows[8].v, -0));
    const none = await database.readPool.query<{ ts: Buffer | null; vs: Buffer | null }>(
      `SELECT ${BUCKET_ARRAYS} FROM (VALUES (now(), 1::float8)) b(t, v) WHERE false`,
    );
    assert.deepEqual(zipBuckets(none.rows[0].ts, none.rows[0].vs), []);
  });
});

describeEachFlavour(
  'query limits',
  (ctx) => {
    const T = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR;
    before(async () => {
      const metrics = Array.from({ length: 3 }, (_, i) => ({
        name: 'wide',
        value: i,
        tags: { host: `h${i}` },
        timestamp: T + i,
      }));
      assert.equal((await ctx.t.post('/api/v1/metrics', { source: 'lim', metrics })).status, 200);
    });

    it('answers 400 past QUERY_MAX_SERIES, asking for a filter; a filter brings it under', async () => {
      const r = await ctx.t.get(`/api/v1/metrics/query?metric=wide&from=${iso(T)}&to=${iso(T + HOUR)}`);
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.details.max_series, 2);
      assert.match(r.json.error.message, /QUERY_MAX_SERIES/);
      const filtered = await ctx.t.get(
        `/api/v1/metrics/query?metric=wide&tags=host:h1&from=${iso(T)}&to=${iso(T + HOUR)}&aggregation=sum`,
      );
      assert.equal(filtered.status, 200, filtered.body);
      assert.equal(filtered.json.series_count, 1);
    });

    it('answers 400 naming granularity past QUERY_MAX_BUCKETS, and auto stays under it even when QUERY_AUTO_BUCKETS is larger', async () => {
      const over = await ctx.t.get(
        `/api/v1/metrics/query?metric=wide&tags=host:h1&from=${iso(T)}&to=${iso(T + HOUR)}&granularity=1m`,
      );
      assert.equal(over.status, 400);
      assert.equal(over.json.error.details.parameter, 'granularity');
      assert.equal(over.json.error.details.max_buckets, 20);
      const auto = await ctx.t.get(
        `/api/v1/metrics/query?metric=wide&tags=host:h1&from=${iso(T)}&to=${iso(T + HOUR)}&fill=null`,
      );
      assert.equal(auto.status, 200, auto.body);
      assert.ok(
        auto.json.data_points.length <= 20,
        `${auto.json.granularity}: ${auto.json.data_points.length} buckets`,
      );
    });
  },
  { QUERY_MAX_SERIES: '2', QUERY_MAX_BUCKETS: '20', QUERY_AUTO_BUCKETS: '100' },
);

describeEachFlavour(
  'query statement timeout',
  (ctx) => {
    it('answers 504 QUERY_TIMEOUT for a query past DB_STATEMENT_TIMEOUT_MS, and serves again afterwards', async () => {
      const T = Date.now() - 60_000;
      assert.equal(
        (await ctx.t.post('/api/v1/metrics', { source: 'slow', metrics: [{ name: 'slow', value: 1, timestamp: T }] }))
          .status,
        200,
      );
      // Another session holds the series table, so the query waits past its statement timeout.
      const blocker = await sqlClient(ctx.t.database.url);
      try {
        await blocker.query('BEGIN; LOCK TABLE series IN ACCESS EXCLUSIVE MODE');
        const r = await ctx.t.get('/api/v1/metrics/query?metric=slow&from=now-1h');
        assert.equal(r.status, 504, r.body);
        assert.equal(r.json.error.code, 'QUERY_TIMEOUT');
        await blocker.query('ROLLBACK');
      } finally {
        await blocker.end();
      }
      const again = await ctx.t.get('/api/v1/metrics/query?metric=slow&from=now-1h&aggregation=count');
      assert.equal(again.status, 200, again.body);
      assert.equal(again.json.data_points.length, 1);
    });

    it('answers a write past the statement timeout with 503 and Retry-After, not the query advice', async () => {
      const blocker = await sqlClient(ctx.t.database.url);
      try {
        await blocker.query('BEGIN; LOCK TABLE points IN ACCESS EXCLUSIVE MODE');
        const r = await ctx.t.post('/api/v1/metrics', { source: 'slow', metrics: [{ name: 'slow', value: 2 }] });
        assert.equal(r.status, 503, r.body);
        assert.equal(r.json.error.code, 'SERVICE_UNAVAILABLE');
        assert.equal(r.headers['retry-after'], '5');
        await blocker.query('ROLLBACK');
      } finally {
        await blocker.end();
      }
    });
  },
  { DB_STATEMENT_TIMEOUT_MS: '300' },
  // PGlite takes no statement_timeout startup option and serves one session: no second session to hold a lock.
  { flavours: ['postgresql'] },
);
