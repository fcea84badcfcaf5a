import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Agg, close, expectedBuckets, ingest, KnownPoint, prng } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const H0 = Math.floor((Date.now() - 5 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

/** load from sources a and b on hosts h1-h3; h3 has no region tag. Each series its own cadence. */
function dataset(): KnownPoint[] {
  const rnd = prng(7);
  const series: Array<{ source: string; tags: Record<string, string>; every: number }> = [
    { source: 'a', tags: { host: 'h1', region: 'eu' }, every: 10_000 },
    { source: 'a', tags: { host: 'h2', region: 'us' }, every: 20_000 },
    { source: 'b', tags: { host: 'h1', region: 'eu' }, every: 15_000 },
    { source: 'b', tags: { host: 'h3' }, every: 30_000 },
  ];
  const pts: KnownPoint[] = [];
  // Starts apart by 100 ms, so that no two series share a timestamp (first and last have no ties to break).
  for (const [i, s] of series.entries())
    for (let t = H0 + 1_000 + i * 100; t < H0 + 3 * HOUR; t += s.every)
      pts.push({ metric: 'load', source: s.source, tags: s.tags, t, v: Math.round(rnd() * 10_000) / 100 });
  // A gap of 20 minutes for host h2: fill applies per group.
  return pts.filter((p) => !(p.tags.host === 'h2' && p.t >= H0 + HOUR && p.t < H0 + HOUR + 20 * MIN));
}

interface Group {
  source?: string;
  tags: Record<string, string | null>;
  data_points: Array<{ timestamp: string; value: number | null }>;
  total_points: number;
  series_count: number;
}

describeEachFlavour('grouped queries', (ctx) => {
  const points = dataset();
  const q = (qs: string) => ctx.t.get(`/api/v1/metrics/query?metric=load&${qs}`);

  before(async () => {
    await ingest(ctx.t, points);
  });

  function checkGroup(
    g: Group,
    members: KnownPoint[],
    from: number,
    to: number,
    step: number,
    agg: Agg,
    label: string,
  ) {
    const want = expectedBuckets(members, from, to, step, agg);
    const got = g.data_points.map((d) => ({ t: Date.parse(d.timestamp), v: d.value }));
    assert.equal(got.length, want.length, `${label}: ${got.length} buckets, expected ${want.length}`);
    for (let i = 0; i < got.length; i++) {
      assert.equal(got[i].t, want[i].t, `${label}: bucket ${i}`);
      assert.ok(close(got[i].v, want[i].v), `${label}: ${iso(got[i].t)} ${got[i].v} != ${want[i].v}`);
    }
    assert.equal(g.total_points, got.length);
  }

  for (const phase of ['before the rollup refresh', 'after the rollup refresh']) {
    it(`aggregates each group like an independent computation, every aggregation, ${phase}`, async () => {
      if (phase.startsWith('after')) await ctx.t.runJob('rollup-refresh');
      const ranges = [
        { from: H0, to: H0 + 3 * HOUR, granularity: '5m', step: 5 * MIN },
        { from: H0 + 150_000, to: H0 + 2 * HOUR + 427_000, granularity: '1h', step: HOUR },
      ];
      for (const r of ranges)
        for (const agg of ['avg', 'sum', 'min', 'max', 'count', 'first', 'last'] as Agg[]) {
          const label = `${agg} ${r.granularity} ${phase}`;
          const res = await q(
            `from=${iso(r.from)}&to=${iso(r.to)}&granularity=${r.granularity}&aggregation=${agg}&group_by=source,host`,
          );
          assert.equal(res.status, 200, res.body);
          const groups = res.json.groups as Group[];
          // Ordered by source, then host.
          assert.deepEqual(
            groups.map((g) => [g.source, g.tags.host, g.series_count]),
            [
              ['a', 'h1', 1],
              ['a', 'h2', 1],
              ['b', 'h1', 1],
              ['b', 'h3', 1],
            ],
            label,
          );
          for (const g of groups)
            checkGroup(
              g,
              points.filter((p) => p.source === g.source && p.tags.host === g.tags.host),
              r.from,
              r.to,
              r.step,
              agg,
              `${label} ${g.source}/${g.tags.host}`,
            );
          // The top level is the ungrouped answer.
          checkGroup(res.json, points, r.from, r.to, r.step, agg, `${label} whole`);
          assert.equal(res.json.series_count, 4);
          // After the refresh the 5m buckets come from a rollup tier (grouped reads share the cover).
          if (phase.startsWith('after') && r.granularity === '5m' && agg === 'avg')
            assert.notEqual(res.json.rollup, null);
        }
    });
  }

  it('groups by a tag alone over both sources; a series without the tag falls in a last group with null', async () => {
    const from = H0,
      to = H0 + 3 * HOUR;
    const res = await q(`from=${iso(from)}&to=${iso(to)}&granularity=30m&aggregation=avg&group_by=region`);
    assert.equal(res.status, 200, res.body);
    const groups = res.json.groups as Group[];
    assert.deepEqual(
      groups.map((g) => [g.tags, g.series_count, 'source' in g]),
      [
        [{ region: 'eu' }, 2, false],
        [{ region: 'us' }, 1, false],
        [{ region: null }, 1, false],
      ],
    );
    checkGroup(
      groups[0],
      points.filter((p) => p.tags.region === 'eu'),
      from,
      to,
      30 * MIN,
      'avg',
      'eu',
    );
    checkGroup(
      groups[2],
      points.filter((p) => p.tags.region === undefined),
      from,
      to,
      30 * MIN,
      'avg',
      'none',
    );
    // Tag filters narrow the series before grouping.
    const eu = await q(`from=${iso(from)}&to=${iso(to)}&granularity=30m&tags=region:eu&group_by=source`);
    assert.equal(eu.status, 200, eu.body);
    assert.deepEqual(
      eu.json.groups.map((g: Group) => [g.source, g.tags, g.series_count]),
      [
        ['a', {}, 1],
        ['b', {}, 1],
      ],
    );
  });

  it('fills each group on its own', async () => {
    const from = H0,
      to = H0 + 2 * HOUR;
    const res = await q(`from=${iso(from)}&to=${iso(to)}&granularity=10m&fill=null&group_by=host`);
    assert.equal(res.status, 200, res.body);
    const groups = res.json.groups as Group[];
    assert.deepEqual(
      groups.map((g) => g.tags.host),
      ['h1', 'h2', 'h3'],
    );
    for (const g of groups) assert.equal(g.data_points.length, 12, g.tags.host!);
    const h2 = groups[1].data_points.map((d) => d.value);
    assert.equal(h2[6], null);
    assert.equal(h2[7], null);
    assert.notEqual(h2[8], null);
    assert.ok(groups[0].data_points.every((d) => d.value !== null));
    const prev = await q(`from=${iso(from)}&to=${iso(to)}&granularity=10m&fill=previous&group_by=host`);
    const h2prev = (prev.json.groups as Group[])[1].data_points.map((d) => d.value);
    assert.equal(h2prev[6], h2prev[5]);
    assert.equal(h2prev[7], h2prev[5]);
    // An empty range (from = to, not on a bucket edge) has no buckets, in the groups as in the whole.
    const at = iso(from + 25 * 60_000);
    for (const fill of ['zero', 'null', 'previous']) {
      const empty = await q(`from=${at}&to=${at}&granularity=1h&fill=${fill}&group_by=host`);
      assert.equal(empty.status, 200, empty.body);
      assert.deepEqual(empty.json.data_points, []);
      assert.equal((empty.json.groups as Group[]).length, 3);
      for (const g of empty.json.groups as Group[]) assert.deepEqual(g.data_points, [], `${fill} ${g.tags.host}`);
    }
  });

  it('answers without group_by exactly as before: no groups field, the same top level', async () => {
    const qs = `from=${iso(H0)}&to=${iso(H0 + HOUR)}&granularity=5m`;
    const plain = await q(qs);
    const grouped = await q(`${qs}&group_by=source`);
    assert.equal(plain.status, 200);
    assert.deepEqual(Object.keys(plain.json), [
      'metric',
      'source',
      'tags',
      'granularity',
      'aggregation',
      'fill',
      'data_points',
      'total_points',
      'series_count',
      'rollup',
      'from',
      'to',
      'query_time_ms',
    ]);
    const { groups, query_time_ms: _a, ...top } = grouped.json;
    const { query_time_ms: _b, ...plainTop } = plain.json;
    assert.deepEqual(top, plainTop);
    assert.equal(groups.length, 2);
  });

  it('refuses a bad group_by with 400 INVALID_QUERY naming it', async () => {
    const eleven = Array.from({ length: 11 }, (_, i) => `k${i}`).join(',');
    for (const bad of ['', 'source,,host', 'host,host', 'source,%20source', ',', eleven, 'ho%00st']) {
      const r = await q(`group_by=${bad}`);
      assert.equal(r.status, 400, `${bad}: ${r.body}`);
      assert.equal(r.json.error.code, 'INVALID_QUERY');
      assert.equal(r.json.error.details.parameter, 'group_by', bad);
    }
    // A tag key that is also an Object.prototype name stays an ordinary key of the group's tags.
    const proto = await q(`from=${iso(H0)}&to=${iso(H0 + HOUR)}&group_by=__proto__,constructor`);
    assert.equal(proto.status, 200, proto.body);
    assert.deepEqual(Object.keys(proto.json.groups[0].tags), ['__proto__', 'constructor']);
    assert.ok(proto.body.includes('"tags":{"__proto__":null,"constructor":null}'), proto.body);
    const ten = Array.from({ length: 10 }, (_, i) => `k${i}`).join(',');
    const ok = await q(`from=${iso(H0)}&to=${iso(H0 + HOUR)}&group_by=${ten}`);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.json.groups.length, 1); // no series has any of these tags: one group, all null
    assert.equal(ok.json.groups[0].tags.k9, null);
    assert.equal(ok.json.groups[0].series_count, 4);
  });

  it('groups the multi-metric query, shared or per query, and names a bad group_by by its place', async () => {
    const body = {
      from: iso(H0),
      to: iso(H0 + HOUR),
      granularity: '15m',
      group_by: 'source',
      queries: [
        { metric: 'load' },
        { metric: 'load', group_by: 'host,region', aggregation: 'max' },
        { metric: 'nope' },
      ],
    };
    const r = await ctx.t.post('/api/v1/metrics/query/multi', body);
    assert.equal(r.status, 200, r.body);
    const [bySource, byHost, missing] = r.json.results;
    assert.deepEqual(
      bySource.groups.map((g: Group) => g.source),
      ['a', 'b'],
    );
    checkGroup(
      bySource.groups[1],
      points.filter((p) => p.source === 'b'),
      H0,
      H0 + HOUR,
      15 * MIN,
      'avg',
      'b',
    );
    assert.deepEqual(
      byHost.groups.map((g: Group) => [g.tags.host, g.tags.region, g.series_count]),
      [
        ['h1', 'eu', 2],
        ['h2', 'us', 1],
        ['h3', null, 1],
      ],
    );
    checkGroup(
      byHost.groups[0],
      points.filter((p) => p.tags.host === 'h1'),
      H0,
      H0 + HOUR,
      15 * MIN,
      'max',
      'h1',
    );
    assert.equal(missing.error.code, 'RESOURCE_NOT_FOUND');
    assert.deepEqual(missing.groups, []);
    const bad = await ctx.t.post('/api/v1/metrics/query/multi', {
      queries: [{ metric: 'load', group_by: 'host,host' }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details.parameter, 'queries[0].group_by');
    const badShared = await ctx.t.post('/api/v1/metrics/query/multi', { group_by: [1], queries: [{ metric: 'load' }] });
    assert.equal(badShared.status, 400);
    assert.equal(badShared.json.error.details.parameter, 'group_by');
    // group_by goes in the body: as a query parameter it is an unknown one, not silently ignored.
    const inQuery = await ctx.t.post('/api/v1/metrics/query/multi?group_by=host', { queries: [{ metric: 'load' }] });
    assert.equal(inQuery.status, 400, inQuery.body);
    assert.equal(inQuery.json.error.details.parameter, 'group_by');
  });
});

describeEachFlavour(
  'grouped query limits',
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

    it('answers 400 naming group_by past QUERY_MAX_GROUPS; fewer groups pass', async () => {
      const over = await ctx.t.get(
        `/api/v1/metrics/query?metric=wide&from=${iso(T)}&to=${iso(T + HOUR)}&group_by=host`,
      );
      assert.equal(over.status, 400, over.body);
      assert.equal(over.json.error.code, 'INVALID_QUERY');
      assert.equal(over.json.error.details.parameter, 'group_by');
      assert.equal(over.json.error.details.max_groups, 2);
      assert.match(over.json.error.message, /QUERY_MAX_GROUPS/);
      const ok = await ctx.t.get(
        `/api/v1/metrics/query?metric=wide&from=${iso(T)}&to=${iso(T + HOUR)}&group_by=source&aggregation=count`,
      );
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(
        ok.json.groups.map((g: Group) => [g.source, g.series_count, g.data_points.map((d) => d.value)]),
        [['lim', 3, [3]]],
      );
    });
  },
  { QUERY_MAX_GROUPS: '2' },
);
