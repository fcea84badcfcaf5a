import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { decodeBatches, decodeSubmission, DecodeContext, MAX_ABS_VALUE } from '../../src/ingestion/decode.js';
import { scanBatches, scanSubmission, ScanSeriesCache } from '../../src/ingestion/json-scan.js';
import type { PointBatch } from '../../src/storage/point-batch.js';

/**
 * The scanner against the slow path (fastify's JSON parser as the app installs it, then
 * decode.ts): whenever the scanner accepts a body, the slow path must accept it too and give the
 * very same batch. When it declines, the service takes the slow path, so errors stay the same by
 * construction; the clean generators check that it does not decline the common shapes.
 */

const NOW = Date.UTC(2024, 0, 15, 10, 30);
const ctx = (over: Partial<DecodeContext> = {}): DecodeContext => ({
  now: NOW,
  limits: {
    maxPoints: 40,
    maxTags: 4,
    maxNameLength: 50,
    maxTagKeyLength: 16,
    maxTagValueLength: 32,
    maxFutureMs: 600_000,
    retentionDays: 7,
  },
  ...over,
});

const jsonParse = new FastifyAdapter().getInstance().getDefaultJsonParser('error', 'error');

type Shape = 'submission' | 'batches';
type Slow = { batch: PointBatch } | { error: string };

function slowPath(body: Buffer, shape: Shape, c: DecodeContext): Slow {
  let parsed: unknown, parseError: unknown;
  jsonParse({} as never, body.toString('utf8'), (err: unknown, value: unknown) => {
    parseError = err;
    parsed = value;
  });
  if (parseError) return { error: `parse: ${(parseError as Error).message}` };
  try {
    return { batch: (shape === 'batches' ? decodeBatches : decodeSubmission)(parsed, c) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const plain = (b: PointBatch) => ({
  length: b.length,
  series: b.series.map((s) => ({ ...s })),
  seriesIndex: [...b.seriesIndex],
  times: [...b.times],
  // Object.is semantics: -0 and 0 are told apart
  values: [...b.values].map((v) => (Object.is(v, -0) ? '-0' : v)),
  minTime: b.minTime,
  maxTime: b.maxTime,
  seriesMinTime: [...b.seriesMinTime],
  seriesMaxTime: [...b.seriesMaxTime],
});

const stats = { accepted: 0, declined: 0 };

/** Compares both paths on one body; answers whether the scanner accepted it. */
function check(body: Buffer, shape: Shape, cache: ScanSeriesCache, c = ctx()): boolean {
  const fast = (shape === 'batches' ? scanBatches : scanSubmission)(body, c, cache);
  if (fast === undefined) {
    stats.declined++;
    return false;
  }
  stats.accepted++;
  const slow = slowPath(body, shape, c);
  if ('error' in slow)
    assert.fail(`the scanner accepted a body the slow path refuses (${slow.error}): ${body.toString('utf8')}`);
  assert.deepEqual(plain(fast), plain(slow.batch), body.toString('utf8'));
  return true;
}

// ---- generators of body text: tokens, then objects with random key order and whitespace ----

const ws = fc.constantFrom('', '', '', ' ', '\n  ', '\t', '\r\n');
const lit = (s: string) => JSON.stringify(s);

const goodName = fc.constantFrom('cpu_usage', 'mem', 'a.b:c-d', '_x', 'metric_0', 'Z9');
const badName = fc.constantFrom('', '1abc', '__x', 'a b', 'x'.repeat(60), 'café', 'constructor');
const goodSource = fc.constantFrom('bench', 'fl_server', 'host-1', 'naïve été', '日本');
const badSource = fc.constantFrom('', 'x'.repeat(60), 'a\u0001b');
const goodKey = fc.constantFrom('host', 'region', 'env', '_a', 'b.c-d');
const badKey = fc.constantFrom('__x', 'constructor', '__proto__', '1', 'a b', 'prototype', 'k'.repeat(20), 'é');
const goodTagValue = fc.constantFrom('web-1', 'eu-west-1', 'x', 'ünï', '🙂', '0');
const badTagValue = fc.constantFrom('', 'v'.repeat(40));

const digits = (min: number, max: number) =>
  fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((a) => a.join(''));
/** JSON number text: integer part, fraction and exponent drawn apart (many digits, big exponents). */
const numberText = fc
  .tuple(
    fc.boolean(),
    fc.oneof(
      fc.constant('0'),
      fc.tuple(fc.constantFrom(...'123456789'), digits(0, 20)).map(([a, b]) => a + b),
    ),
    fc.option(digits(1, 20)),
    fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 4))),
  )
  .map(
    ([neg, int, frac, exp]) =>
      `${neg ? '-' : ''}${int}${frac !== null ? `.${frac}` : ''}${exp !== null ? exp.join('') : ''}`,
  );
const goodValue = fc.oneof(
  numberText.filter((t) => Math.abs(JSON.parse(t)) <= MAX_ABS_VALUE),
  fc.double({ noNaN: true, min: -MAX_ABS_VALUE, max: MAX_ABS_VALUE }).map((d) => JSON.stringify(d)),
  fc.integer().map(String),
  fc.constantFrom('-0', '0.1', '1e5', '1E-7', '0.30000000000000004', '9007199254740993', '5e-324', '1e296'),
);
const badValue = fc.constantFrom(
  '1e400',
  '-1e999',
  '1.7976931348623157e308',
  '-1e297',
  '"5"',
  'null',
  'true',
  '01',
  '1.',
  '.5',
  '+1',
  '1e',
  '-',
  'NaN',
);

const iso = (ms: number) => new Date(ms).toISOString();
const goodTime = fc.oneof(
  fc.integer({ min: -6 * 86_400_000, max: 500_000 }).map((d) => lit(iso(NOW + d))),
  fc.constantFrom(lit('2024-01-15T10:29:00Z'), lit('2024-01-15 11:29:00.123456+01:00'), lit('2024-01-15T10:00Z')),
  fc.integer({ min: -6 * 86_400_000, max: 500_000 }).map((d) => String(NOW + d)),
  fc.constant('null'),
);
const badTime = fc.constantFrom(
  lit('yesterday'),
  lit(''),
  lit('2024-01-15T10:30:00'),
  lit(iso(NOW + 3_600_000)),
  lit(iso(NOW - 30 * 86_400_000)),
  String(Math.floor(NOW / 1000)),
  'true',
  '{}',
);
const goodUnit = fc.constantFrom(lit('ms'), lit('percent'), 'null', lit('µs'), lit(''));
const badUnit = fc.constantFrom(lit('u'.repeat(70)), '5', '{}');

/** An object's text from [key, value text] pairs in random order with random whitespace. */
const objectText = (entries: fc.Arbitrary<Array<[string, string]>>) =>
  fc.tuple(entries, fc.array(ws, { minLength: 24, maxLength: 24 })).chain(([e, spaces]) =>
    fc.shuffledSubarray(e, { minLength: e.length, maxLength: e.length }).map((order) => {
      const parts = order.map(
        ([k, v], i) => `${spaces[i % 24]}${lit(k)}${spaces[(i + 7) % 24]}:${spaces[(i + 3) % 24]}${v}`,
      );
      return `{${parts.join(',')}${spaces[23]}}`;
    }),
  );

const optional = (key: string, arb: fc.Arbitrary<string>) =>
  fc.option(
    arb.map((v): [string, string] => [key, v]),
    { nil: undefined },
  );
const entries = (...items: Array<fc.Arbitrary<[string, string] | undefined>>) =>
  fc.tuple(...items).map((xs) => xs.filter((x): x is [string, string] => x !== undefined));

function tagsText(clean: boolean) {
  const key = clean ? goodKey : fc.oneof(goodKey, goodKey, badKey);
  const value = clean ? goodTagValue.map(lit) : fc.oneof(goodTagValue.map(lit), badTagValue.map(lit), fc.constant('5'));
  const pairs = fc.array(fc.tuple(key, value), { maxLength: clean ? 4 : 6 });
  // Clean: distinct keys. Otherwise duplicates may come.
  const list = clean ? pairs.map((ps) => [...new Map(ps)]) : pairs;
  return objectText(list as fc.Arbitrary<Array<[string, string]>>);
}

function pointText(clean: boolean): fc.Arbitrary<string> {
  const pick = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>) => (clean ? good : fc.oneof(good, good, good, bad));
  const tags = clean
    ? fc.oneof(tagsText(true), fc.constant('null'))
    : fc.oneof(tagsText(false), fc.constant('null'), fc.constant('[]'));
  return objectText(
    entries(
      clean
        ? goodName.map((n): [string, string] => ['name', lit(n)])
        : optional('name', pick(goodName.map(lit), badName.map(lit))),
      clean ? goodValue.map((v): [string, string] => ['value', v]) : optional('value', pick(goodValue, badValue)),
      optional('unit', pick(goodUnit, badUnit)),
      optional('tags', tags),
      optional('timestamp', pick(goodTime, badTime)),
      clean ? fc.constant(undefined) : optional('extra', fc.constantFrom('1', '"x"', '{"a":[1,{}]}')),
      clean ? fc.constant(undefined) : optional('value', goodValue), // a duplicate key
    ),
  );
}

function submissionText(clean: boolean, maxPoints = 8): fc.Arbitrary<string> {
  const metrics = fc
    .tuple(fc.array(pointText(clean), { maxLength: maxPoints }), ws)
    .map(([ps, s]) => `[${s}${ps.join(`,${s}`)}${s}]`);
  const source = clean
    ? goodSource.map(lit)
    : fc.oneof(goodSource.map(lit), goodSource.map(lit), badSource.map(lit), fc.constant('7'));
  if (clean) {
    // Source (and timestamp) before metrics: the order the scanner takes.
    return fc
      .tuple(source, fc.option(goodTime), metrics, ws)
      .map(([s, t, m, w]) => `{${w}"source":${w}${s},${t !== null ? `"timestamp":${t},` : ''}${w}"metrics":${m}}${w}`);
  }
  return objectText(
    entries(
      optional('source', source),
      optional('timestamp', fc.oneof(goodTime, badTime)),
      optional('metrics', fc.oneof(metrics, metrics, fc.constant('{}'))),
      optional('service', fc.constant('"svc"')),
    ),
  );
}

const batchesText = (clean: boolean) =>
  fc
    .tuple(fc.array(submissionText(clean, 4), { maxLength: 4 }), ws)
    .map(([bs, w]) => `${w}{"batches":${w}[${bs.join(',')}]}`);

/** Random edits of a body's bytes: deletions, insertions (structural bytes, escapes, bad UTF-8), truncation. */
const mutated = (body: fc.Arbitrary<string>) =>
  fc
    .tuple(
      body,
      fc.array(
        fc.tuple(
          fc.constantFrom('delete', 'insert', 'replace', 'truncate'),
          fc.nat(),
          fc.constantFrom(
            ...['{', '}', '[', ']', '"', ',', ':', '\\', ' ', '0', '-', 'e', '.', 'n', 'x', '\u0000'].map((s) =>
              Buffer.from(s),
            ),
            Buffer.from([0xff]),
            Buffer.from([0xc3]),
            Buffer.from('\\u0041'),
            Buffer.from('é'),
          ),
        ),
        { minLength: 1, maxLength: 3 },
      ),
    )
    .map(([text, edits]) => {
      let b = Buffer.from(text, 'utf8');
      for (const [kind, at, bytes] of edits) {
        const i = b.length === 0 ? 0 : at % b.length;
        if (kind === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
        else if (kind === 'insert') b = Buffer.concat([b.subarray(0, i), bytes, b.subarray(i)]);
        else if (kind === 'replace') b = Buffer.concat([b.subarray(0, i), bytes, b.subarray(i + bytes.length)]);
        else b = b.subarray(0, i);
      }
      return b;
    });

const RUNS = Number(process.env.JSON_SCAN_RUNS ?? 3000);

describe('json-scan: the scanner against JSON.parse + decode.ts', () => {
  it('reads the reference body and the bench shapes', () => {
    const cache = new ScanSeriesCache(1000);
    const body = Buffer.from(
      JSON.stringify({
        source: 'fl_server',
        timestamp: '2024-01-15T10:30:00Z',
        metrics: [
          { name: 'cpu_usage', value: 45.2, unit: 'percent', tags: { host: 'fl-server-01', experiment_id: 'exp_001' } },
          { name: 'cpu_usage', value: 46, tags: { experiment_id: 'exp_001', host: 'fl-server-01' } },
          { name: 'active_clients', value: 5, unit: 'count', timestamp: 1_705_314_000_000 },
        ],
      }),
    );
    assert.ok(check(body, 'submission', cache));
    const point = Buffer.from(
      JSON.stringify({
        source: 'bench',
        metrics: Array.from({ length: 30 }, (_, i) => ({
          name: `metric_${i % 10}`,
          value: Math.round(Math.random() * 1e6) / 100,
          unit: 'ms',
          tags: { host: `host-${i % 3}`, region: 'eu-west-1' },
          timestamp: iso(NOW - 60_000 * (i >> 3)),
        })),
      }),
    );
    assert.ok(check(point, 'submission', cache));
    assert.ok(check(point, 'submission', cache)); // again, from the cache
    const scrape = Buffer.from(
      JSON.stringify({
        batches: [0, 1, 2].map((h) => ({
          source: `host-${h}`,
          timestamp: iso(NOW - 10_000),
          metrics: Array.from({ length: 10 }, (_, i) => ({ name: `metric_${i}`, value: i * 1.5 })),
        })),
      }),
    );
    assert.ok(check(scrape, 'batches', cache));
  });

  it('guesses each series from the one before it, and checks every guess', () => {
    const cache = new ScanSeriesCache(1000);
    const t = iso(NOW - 60_000);
    const point = (name: string, tags: Record<string, string>, value = 1) => ({ name, value, tags, timestamp: t });
    const body = (source: string, points: object[]) => Buffer.from(JSON.stringify({ source, metrics: points }));
    const a = point('cpu', { host: 'a' }),
      b = point('cpu', { host: 'b' }),
      c = point('mem', { host: 'a' }),
      ab = point('cpu', { host: 'ab' }), // a guess of `cpu{host=a}` must not match on its prefix
      two = point('cpu', { host: 'a', region: 'x' });
    assert.ok(check(body('s1', [a, b, c, a, b, c]), 'submission', cache)); // the order learnt
    assert.ok(check(body('s1', [a, b, c, a, ab, two, c]), 'submission', cache)); // guesses that miss
    assert.ok(check(body('s1', [c, b, a, a, a]), 'submission', cache));
    // The same name and tags from another source are another series: guesses stay within a source.
    const batches = Buffer.from(
      JSON.stringify({
        batches: [
          { source: 's1', metrics: [a, b, c] },
          { source: 's2', metrics: [a, b, c] },
          { source: 's1', metrics: [a, b] },
        ],
      }),
    );
    assert.ok(check(batches, 'batches', cache));
  });

  it('declines what it is not sure of (escapes, duplicate keys, odd key order, bad UTF-8, …)', () => {
    const cache = new ScanSeriesCache(1000);
    const declined = [
      '', // fastify: empty body
      '\ufeff{"source":"a","metrics":[]}', // BOM
      '{"source":"a","metrics":[{"name":"m\\u0031","value":1}]}', // an escape
      '{"source":"a","metrics":[{"name":"m","value":1,"value":2}]}', // a duplicate key
      '{"source":"a","metrics":[{"name":"m","value":1,"tags":{"h":"1","h":"2"}}]}',
      '{"source":"a","metrics":[{"name":"m","value":1,"tags":{"__proto__":"x"}}]}',
      '{"source":"a","metrics":[{"name":"m","value":1e400}]}',
      '{"source":"a","metrics":[{"name":"m","value":1}]} x',
      '{"metrics":[{"name":"m","value":1}],"source":"a"}', // source after metrics
      '{"service":"svc","metric_type":"cpu","value":1}', // the system-monitor shape
      `{"source":"a","metrics":[${Array(41).fill('{"name":"m","value":1}').join(',')}]}`, // > maxPoints
      '{"source":"a","metrics":[{"name":"m","value":1,"timestamp":"2024-01-15T10:30:00"}]}', // no zone
    ].map((text) => Buffer.from(text));
    declined.push(Buffer.concat([Buffer.from('{"source":"a'), Buffer.from([0xff]), Buffer.from('","metrics":[]}')])); // bad UTF-8
    for (const body of declined) assert.equal(check(body, 'submission', cache), false, body.toString());
  });

  it('reads numbers exactly as JSON.parse does', () => {
    const cache = new ScanSeriesCache(1000);
    fc.assert(
      fc.property(fc.array(fc.oneof(numberText, goodValue), { minLength: 1, maxLength: 40 }), (values) => {
        const ok = values.filter((v) => Math.abs(JSON.parse(v)) <= MAX_ABS_VALUE);
        if (ok.length === 0) return;
        const body = Buffer.from(`{"source":"n","metrics":[${ok.map((v) => `{"name":"v","value":${v}}`).join(',')}]}`);
        assert.ok(check(body, 'submission', cache), body.toString());
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts random bodies of the common shapes, with the slow path’s batch', () => {
    const cache = new ScanSeriesCache(50); // small: it starts afresh now and then
    fc.assert(
      fc.property(submissionText(true), (text) => assert.ok(check(Buffer.from(text), 'submission', cache), text)),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(batchesText(true), (text) => assert.ok(check(Buffer.from(text), 'batches', cache), text)),
      { numRuns: RUNS },
    );
  });

  it('never accepts differently: random bodies with bad fields, duplicates and unknown keys', () => {
    const cache = new ScanSeriesCache(1000);
    const before = { ...stats };
    fc.assert(
      fc.property(submissionText(false), (text) => void check(Buffer.from(text), 'submission', cache)),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(batchesText(false), (text) => void check(Buffer.from(text), 'batches', cache)),
      { numRuns: RUNS },
    );
    // Both outcomes were exercised.
    assert.ok(stats.accepted > before.accepted && stats.declined > before.declined, JSON.stringify(stats));
  });

  it('never accepts differently: byte-level edits of good bodies (syntax errors, escapes, bad UTF-8)', () => {
    const cache = new ScanSeriesCache(1000);
    const before = { ...stats };
    fc.assert(
      fc.property(mutated(submissionText(true, 4)), (body) => void check(body, 'submission', cache)),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(mutated(batchesText(true)), (body) => void check(body, 'batches', cache)),
      { numRuns: RUNS },
    );
    // Both outcomes were exercised: some edits leave a body the scanner reads (a space, a digit),
    // and only those are compared with the slow path.
    assert.ok(stats.accepted > before.accepted && stats.declined > before.declined, JSON.stringify(stats));
  });

  it('follows ?precision and the time window of the context', () => {
    const cache = new ScanSeriesCache(1000);
    const s = Math.floor(NOW / 1000) - 60;
    const body = Buffer.from(`{"source":"p","metrics":[{"name":"m","value":1,"timestamp":${s}}]}`);
    assert.equal(check(body, 'submission', cache), false); // seconds without ?precision: refused by the slow path
    assert.ok(check(body, 'submission', cache, ctx({ precision: 's' })));
    // Epoch numbers finer than a microsecond: dropped toward the earlier one by both paths alike.
    const base = (NOW - 60_000) * 1000; // µs
    for (const [precision, t, us] of [
      ['ns', `${BigInt(base) * 1000n + 123_456_700n}`, base + 123_456],
      ['ns', '1705314600123024000', 1705314600123024], // the double …023872, just below its microsecond
      ['us', `${base + 123}.75`, base + 123],
      ['ms', `${NOW - 60_000}.1234567`, base + 123],
      ['s', `${s}.1234565`, s * 1e6 + 123_456],
    ] as const) {
      const fine = Buffer.from(`{"source":"p","metrics":[{"name":"m","value":1,"timestamp":${t}}]}`);
      const c = ctx({ precision });
      assert.ok(check(fine, 'submission', cache, c), t);
      assert.equal((scanSubmission(fine, c, cache) as PointBatch).times[0], us / 1000, t);
    }
    const old = Buffer.from(
      `{"source":"p","metrics":[{"name":"m","value":1,"timestamp":"${iso(NOW - 8 * 86_400_000)}"}]}`,
    );
    assert.equal(check(old, 'submission', cache), false);
    assert.ok(check(old, 'submission', cache, ctx({ limits: { ...ctx().limits, retentionDays: 0 } })));
  });
});
