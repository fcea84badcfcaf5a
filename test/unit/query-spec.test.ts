import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/common/errors.js';
import { bucketRuns, coarsestTier, planSegments } from '../../src/storage/rollup-plan.js';
import { MAX_GROUP_BY_KEYS, parseGroupBy, parseQuerySpec, parseTags } from '../../src/query/query-spec.js';
import { compareGroups } from '../../src/query/query.service.js';
import { tierFor } from '../../src/storage/tiers.js';

const NOW = Date.UTC(2024, 0, 15, 11);
const limits = { maxBuckets: 11_000, autoBuckets: 1_000 };

function parameterOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError);
    assert.equal(e.code, 'INVALID_QUERY');
    return e.details!.parameter as string;
  }
  assert.fail('accepted');
}

describe('parseQuerySpec', () => {
  it('counts the buckets a range touches, a `from` between two bucket starts included', () => {
    const from = NOW + 500; // half a second past a 1s bucket start
    const iso = (t: number) => new Date(t).toISOString();
    // 11,000 s from a misaligned start touch 11,001 one-second buckets: past QUERY_MAX_BUCKETS.
    assert.equal(
      parameterOf(() =>
        parseQuerySpec({ metric: 'a', from: iso(from), to: iso(from + 11_000_000), granularity: '1s' }, NOW, limits),
      ),
      'granularity',
    );
    assert.equal(
      parseQuerySpec({ metric: 'a', from: iso(NOW), to: iso(NOW + 11_000_000), granularity: '1s' }, NOW, limits)
        .granularityMs,
      1000,
    );
    // auto over 1,000 s from a misaligned start: 1 s would touch 1,001 buckets, so the next step.
    const auto = parseQuerySpec({ metric: 'a', from: iso(from), to: iso(from + 1_000_000) }, NOW, limits);
    assert.ok(Math.ceil((from + 1_000_000) / auto.granularityMs) - Math.floor(from / auto.granularityMs) <= 1_000);
    assert.equal(
      parseQuerySpec({ metric: 'a', from: iso(NOW), to: iso(NOW + 1_000_000) }, NOW, limits).granularity,
      '1s',
    );
  });

  it('defaults to the last hour, auto granularity, avg, no fill', () => {
    const s = parseQuerySpec({ metric: 'cpu' }, NOW, limits);
    assert.equal(s.to, NOW);
    assert.equal(s.from, NOW - 3_600_000);
    assert.equal(s.aggregation, 'avg');
    assert.equal(s.fill, 'none');
    assert.equal(s.granularity, '5s'); // 3600 s / 1000 buckets → 3.6 s → next nice step
  });
  it('reads the reference example', () => {
    const s = parseQuerySpec(
      {
        metric: 'cpu_usage',
        source: 'fl_server',
        from: '2024-01-15T10:00:00Z',
        to: '2024-01-15T11:00:00Z',
        granularity: '5m',
        aggregation: 'avg',
        tags: 'experiment_id:exp_001',
      },
      NOW,
      limits,
    );
    assert.equal(s.granularityMs, 300_000);
    assert.deepEqual(s.tags, [{ key: 'experiment_id', values: ['exp_001'] }]);
  });
  it('names the bad parameter', () => {
    assert.equal(
      parameterOf(() => parseQuerySpec({}, NOW, limits)),
      'metric',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', aggregation: 'median2' }, NOW, limits)),
      'aggregation',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', aggregation: 'sum;drop' }, NOW, limits)),
      'aggregation',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', granularity: '7x' }, NOW, limits)),
      'granularity',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', granularity: '0s' }, NOW, limits)),
      'granularity',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', granularity: '-5m' }, NOW, limits)),
      'granularity',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', fill: 'spline' }, NOW, limits)),
      'fill',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', from: 'yesterday' }, NOW, limits)),
      'from',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', tags: 'novalue' }, NOW, limits)),
      'tags',
    );
    assert.equal(
      parameterOf(() =>
        parseQuerySpec({ metric: 'a', from: '2024-01-15T11:00:00Z', to: '2024-01-15T10:00:00Z' }, NOW, limits),
      ),
      'from',
    );
  });
  it('refuses NUL and lone surrogates in text parameters, which PostgreSQL would answer with an error', () => {
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a\u0000b' }, NOW, limits)),
      'metric',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', source: 'x\u0000' }, NOW, limits)),
      'source',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', tags: 'host:a\u0000' }, NOW, limits)),
      'tags',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', tags: 'ho\u0000st:a' }, NOW, limits)),
      'tags',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', tags: { host: ['a', 'b\uD800'] } }, NOW, limits)),
      'tags',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a\u0000' }, NOW, limits, 'queries[2].')),
      'queries[2].metric',
    );
  });

  it('refuses times a date cannot hold instead of failing later', () => {
    for (const [from, to] of [
      ['1700000000000', '99999999999999999999'],
      ['-99999999999999999999', undefined],
      [undefined, '8640000000000001'],
      ['0000-01-01T00:00:00Z', '0001-01-01T00:00:00Z'],
    ]) {
      const p = parameterOf(() => parseQuerySpec({ metric: 'a', from, to }, NOW, limits));
      assert.ok(p === 'from' || p === 'to', `${from} ${to}: ${p}`);
    }
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', to: '9000000000000000' }, NOW, limits)),
      'to',
    );
    assert.equal(
      parseQuerySpec({ metric: 'a', from: '0001-01-01T00:00:00Z', to: '9999-12-31T23:00:00Z' }, NOW, limits).to,
      Date.UTC(9999, 11, 31, 23),
    );
  });

  it('keeps auto under QUERY_MAX_BUCKETS when QUERY_AUTO_BUCKETS is larger', () => {
    const s = parseQuerySpec({ metric: 'a', from: '2024-01-15T00:00:00Z', to: '2024-01-15T10:00:00Z' }, NOW, {
      maxBuckets: 20,
      autoBuckets: 1_000,
    });
    assert.ok((s.to - s.from) / s.granularityMs <= 20, s.granularity);
  });

  it('refuses an empty list of values for a tag instead of dropping the filter', () => {
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', tags: { host: [] } }, NOW, limits)),
      'tags',
    );
  });

  it('refuses a granularity that is not a string instead of taking auto', () => {
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', granularity: 5 }, NOW, limits)),
      'granularity',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', granularity: {} }, NOW, limits)),
      'granularity',
    );
    assert.equal(parseQuerySpec({ metric: 'a', granularity: '' }, NOW, limits).granularity, '5s');
  });

  it('refuses more buckets than QUERY_MAX_BUCKETS, and auto never does', () => {
    const fiveYears = { metric: 'a', from: '2019-01-01T00:00:00Z', to: '2024-01-01T00:00:00Z' };
    assert.equal(
      parameterOf(() => parseQuerySpec({ ...fiveYears, granularity: '1m' }, NOW, limits)),
      'granularity',
    );
    const s = parseQuerySpec(fiveYears, NOW, limits);
    assert.ok((s.to - s.from) / s.granularityMs <= 1000);
  });
  it('allows from == to (an empty range)', () => {
    const s = parseQuerySpec({ metric: 'a', from: '2024-01-15T10:00:00Z', to: '2024-01-15T10:00:00Z' }, NOW, limits);
    assert.equal(s.from, s.to);
  });
  it('groups repeated tag keys as alternatives and splits at the first colon', () => {
    assert.deepEqual(parseTags(['host:a', 'host:b', 'url:http://x']), [
      { key: 'host', values: ['a', 'b'] },
      { key: 'url', values: ['http://x'] },
    ]);
    assert.deepEqual(parseTags({ host: 'a' }), [{ key: 'host', values: ['a'] }]);
  });
});

describe('group_by', () => {
  it('reads comma-separated names, trimmed, in order; absent is undefined', () => {
    assert.equal(parseGroupBy(undefined), undefined);
    assert.deepEqual(parseGroupBy('source,host'), ['source', 'host']);
    assert.deepEqual(parseGroupBy(' host , source '), ['host', 'source']);
    assert.deepEqual(parseGroupBy(['host', 'region,source']), ['host', 'region', 'source']); // repeated or a JSON array
    assert.deepEqual(parseGroupBy('region'), ['region']);
  });
  it('refuses empty names, duplicates, too many keys and non-strings, naming the parameter', () => {
    const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`).join(',');
    assert.equal(parseGroupBy(keys(MAX_GROUP_BY_KEYS))?.length, 10);
    for (const bad of [
      '',
      ',',
      'source,',
      'source,,host',
      'host,host',
      'host, host',
      keys(11),
      [],
      [1],
      5,
      'a\u0000',
    ]) {
      assert.equal(
        parameterOf(() => parseGroupBy(bad)),
        'group_by',
        JSON.stringify(bad),
      );
    }
    assert.equal(
      parameterOf(() => parseGroupBy(['host', 'host'], 'queries[1].group_by')),
      'queries[1].group_by',
    );
  });
  it('orders groups key by key, code-unit order, null last', () => {
    const groups: Array<Array<string | null>> = [
      ['b', null],
      ['a', 'y'],
      [null, 'x'],
      ['b', 'B'],
      ['a', null],
      ['B', 'z'],
    ];
    assert.deepEqual(groups.sort(compareGroups), [
      ['B', 'z'],
      ['a', 'y'],
      ['a', null],
      ['b', 'B'],
      ['b', null],
      [null, 'x'],
    ]);
  });
});

describe('epoch numbers in from/to', () => {
  it('reads epoch milliseconds and refuses seconds, microseconds and nanoseconds, saying what was expected', () => {
    const ms = Date.UTC(2024, 0, 15, 10);
    assert.equal(parseQuerySpec({ metric: 'a', from: String(ms), to: String(ms + 60_000) }, NOW, limits).from, ms);
    assert.equal(parseQuerySpec({ metric: 'a', from: ms, to: ms + 60_000 }, NOW, limits).to, ms + 60_000); // JSON numbers
    for (const [value, unit] of [
      [String(ms / 1000), 'seconds'],
      [String(ms * 1000), 'microseconds'],
      [String(ms * 1e6), 'nanoseconds'],
      [String(ms / 1000 + 0.5), 'seconds'],
    ]) {
      try {
        parseQuerySpec({ metric: 'a', from: value }, NOW, limits);
        assert.fail(`${value} accepted`);
      } catch (e) {
        assert.ok(e instanceof ApiError);
        assert.equal(e.details!.parameter, 'from');
        assert.match(e.message, new RegExp(`looks like epoch ${unit}`));
        assert.match(e.message, /epoch milliseconds or an ISO 8601/);
      }
    }
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', from: ms / 1000 }, NOW, limits)),
      'from',
    );
    assert.equal(
      parameterOf(() => parseQuerySpec({ metric: 'a', to: '0' }, NOW, limits)),
      'to',
    );
  });
});

describe('rollup planning', () => {
  it('picks the coarsest tier that tiles the granularity', () => {
    assert.equal(tierFor(30_000), undefined);
    assert.equal(tierFor(60_000)?.label, '1m');
    assert.equal(tierFor(120_000)?.label, '1m');
    assert.equal(tierFor(300_000)?.label, '5m');
    assert.equal(tierFor(90 * 60_000)?.label, '5m');
    assert.equal(tierFor(3_600_000)?.label, '1h');
    assert.equal(tierFor(7 * 86_400_000)?.label, '1d');
  });
  const H = 3_600_000,
    M = 60_000;
  const minute = (t: number) => Math.round(((t / M) % 1440) * 1000) / 1000;
  const show = (segs: ReturnType<typeof planSegments>) =>
    segs.map((s) => `${s.tier?.label ?? 'raw'} ${minute(s.from)}-${minute(s.to)}`);
  it('covers the middle with the coarsest tier and the ragged edges with finer tiers, then raw', () => {
    const day = Date.UTC(2024, 0, 15);
    const from = day + 10 * H + 2 * M + 30_000,
      to = day + 12 * H + 7 * M + 13_000;
    assert.deepEqual(show(planSegments(from, to, H, 'avg', { materialisedUntil: Infinity })), [
      'raw 602.5-603',
      '1m 603-605',
      '5m 605-660',
      '1h 660-720',
      '5m 720-725',
      '1m 725-727',
      'raw 727-727.217',
    ]);
  });
  it('reads raw points after the watermark and never a tier bucket that ends past it', () => {
    const day = Date.UTC(2024, 0, 15);
    const segs = planSegments(day, day + 2 * H, H, 'max', { materialisedUntil: day + H + 17 * M });
    assert.deepEqual(show(segs), ['1h 0-60', '5m 60-75', '1m 75-77', 'raw 77-120']);
    assert.equal(coarsestTier(segs)?.label, '1h');
    assert.deepEqual(show(planSegments(day, day + H, H, 'max', { materialisedUntil: -Infinity })), ['raw 0-60']);
  });
  it('uses raw points for first/last, and tiers only where they tile the granularity', () => {
    assert.deepEqual(show(planSegments(0, 86_400_000, H, 'last', { materialisedUntil: Infinity })), ['raw 0-0']);
    assert.deepEqual(show(planSegments(0, 10 * M, 30_000, 'avg', { materialisedUntil: Infinity })), ['raw 0-10']);
    assert.deepEqual(show(planSegments(0, 14 * M, 7 * M, 'sum', { materialisedUntil: Infinity })), ['1m 0-14']);
  });
  it('groups segments into runs that share no bucket: a new run starts only on a bucket edge', () => {
    const day = Date.UTC(2024, 0, 15);
    const from = day + 10 * H + 2 * M + 30_000,
      to = day + 12 * H + 7 * M + 13_000;
    const runs = (width: number) =>
      bucketRuns(planSegments(from, to, width, 'avg', { materialisedUntil: Infinity }), width).map((r) =>
        show(r).join(' + '),
      );
    // 1h buckets: the first and last are partial and take rows of three segments each.
    assert.deepEqual(runs(H), [
      'raw 602.5-603 + 1m 603-605 + 5m 605-660',
      '1h 660-720',
      '5m 720-725 + 1m 725-727 + raw 727-727.217',
    ]);
    // 5m buckets: the 5m tier is a run of its own, whose rows are whole buckets.
    assert.deepEqual(runs(5 * M), ['raw 602.5-603 + 1m 603-605', '5m 605-725', '1m 725-727 + raw 727-727.217']);
    // 15m buckets over the 5m tier: neither 605 nor 725 is a 15m edge, so every segment shares a bucket with the next.
    assert.deepEqual(runs(15 * M), ['raw 602.5-603 + 1m 603-605 + 5m 605-725 + 1m 725-727 + raw 727-727.217']);
  });
});
