import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/common/errors.js';
import { IngestShape, oversizedTagFilters, oversizedTags } from '../../src/common/tag-guard.js';
import { decodeAppMetrics, decodeBatches, decodeSubmission, DecodeContext } from '../../src/ingestion/decode.js';
import { MAX_TAG_FILTER_VALUES, parseTags } from '../../src/query/query-spec.js';

/**
 * The byte-level look for oversized `tags` values (tag-guard.ts) against what the routes do with
 * the parsed body: whatever it names on an ingest body, decode.ts refuses too, naming the same
 * field when nothing else in the body is wrong; on a query body it names a filter exactly when
 * parseTags refuses that filter for its size. Where JSON.parse would make a different body of the
 * bytes (a repeated key) or the route does not read a `tags` key, it names nothing.
 */

const MAX = 4;
const NOW = Date.UTC(2024, 0, 15, 10, 30);
const ctx: DecodeContext = {
  now: NOW,
  limits: {
    maxPoints: 1000,
    maxTags: MAX,
    maxNameLength: 50,
    maxTagKeyLength: 16,
    maxTagValueLength: 32,
    maxFutureMs: 600_000,
    retentionDays: 7,
  },
};
const DECODE: Record<IngestShape, (b: unknown, c: DecodeContext) => unknown> = {
  submission: decodeSubmission,
  batches: decodeBatches,
  app: (b, c) => decodeAppMetrics('app', b, c),
};
const text = (body: unknown) => Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
const guard = (body: unknown, shape: IngestShape, maxPoints = 1000) =>
  oversizedTags(text(body), shape, { maxTags: MAX, maxPoints });
const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`]));

/** decode.ts's first problem's field, or undefined when it accepts the body. */
function decodeField(body: unknown, shape: IngestShape): string | undefined {
  try {
    DECODE[shape](typeof body === 'string' ? JSON.parse(body) : body, ctx);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.getStatus(), 400);
    return (err.details as { field: string }).field;
  }
}

describe('oversizedTags', () => {
  it('names the tags of the first point past the limit, as decode.ts does, in every shape', () => {
    const cases: Array<[unknown, IngestShape, string]> = [
      [{ source: 's', metrics: [{ name: 'a', value: 1, tags: tags(MAX + 1) }] }, 'submission', 'metrics[0].tags'],
      [
        {
          source: 's',
          metrics: [
            { name: 'a', value: 1, tags: tags(MAX) },
            { name: 'b', value: 2, tags: tags(100) },
          ],
        },
        'submission',
        'metrics[1].tags',
      ],
      [
        {
          batches: [
            { source: 's', metrics: [] },
            { source: 't', metrics: [{ name: 'a', value: 1, tags: tags(9) }] },
          ],
        },
        'batches',
        'batches[1].metrics[0].tags',
      ],
      [{ service: 'api', metric_type: 'latency', value: 1, tags: tags(MAX + 1) }, 'submission', 'tags'],
      [
        { batches: [{ service: 'api', metric_type: 'latency', value: 1, tags: tags(MAX + 1) }] },
        'batches',
        'batches[0].tags',
      ],
      [{ metrics: [{ name: 'a', value: 1, timestamp: NOW, tags: tags(MAX + 1) }] }, 'app', 'metrics[0].tags'],
      // Escaped keys read as JSON reads them.
      [
        `{"source":"s","m\\u0065trics":[{"name":"a","value":1,"t\\u0061gs":${JSON.stringify(tags(MAX + 1))}}]}`,
        'submission',
        'metrics[0].tags',
      ],
      [
        `{"source":"s","\\u006d\\u0065\\u0074\\u0072\\u0069\\u0063\\u0073":[{"name":"a","value":1,"\\u0074\\u0061\\u0067\\u0073":${JSON.stringify(tags(MAX + 1))}}]}`,
        'submission',
        'metrics[0].tags',
      ],
    ];
    for (const [body, shape, field] of cases) {
      assert.equal(guard(body, shape), field, text(body).toString().slice(0, 120));
      assert.equal(decodeField(body, shape), field);
    }
  });

  it('names nothing where the route reads no tags, or JSON.parse would keep another value', () => {
    const over = tags(MAX + 1);
    const point = { name: 'a', value: 1 };
    const cases: Array<[unknown, IngestShape]> = [
      [{ source: 's', metrics: [point], tags: over }, 'submission'], // top-level tags beside metrics
      [{ source: 's', metrics: [{ ...point, meta: { tags: over } }] }, 'submission'],
      [{ source: 's', metrics: [{ ...point, tags: { tags: over } }] }, 'submission'],
      [{ service: 'api', metric_type: 'm', value: 1, extra: { tags: over } }, 'submission'],
      [{ batches: [{ source: 's', metrics: [point], tags: over }] }, 'batches'],
      [{ batches: [{ source: 's', metrics: [point] }], tags: over }, 'batches'],
      [{ metrics: [{ ...point, timestamp: NOW }], tags: over }, 'app'],
      [{ source: 's', metrics: [{ ...point, tags: tags(MAX) }] }, 'submission'],
      // A repeated key: JSON.parse keeps the last one.
      [`{"source":"s","metrics":[{"name":"a","value":1,"tags":${JSON.stringify(over)},"tags":{}}]}`, 'submission'],
      [`{"source":"s","metrics":[{"name":"a","value":1,"tags":${JSON.stringify(over)}}],"metrics":[]}`, 'submission'],
      [
        `{"source":"s","metrics":[{"name":"a","value":1,"tags":{${Array(MAX + 3)
          .fill('"k":"v"')
          .join(',')}}}]}`,
        'submission',
      ],
    ];
    for (const [body, shape] of cases) {
      assert.equal(guard(body, shape), undefined, text(body).toString().slice(0, 160));
      assert.notEqual(decodeField(body, shape), 'metrics[0].tags');
    }
    // Braces, brackets, colons, commas and escaped quotes inside strings are text (decode.ts
    // refuses these keys for their characters, not for their number).
    const tricky = {
      name: 'a',
      value: 1,
      tags: { 'k"{': '}]:,', 'x\\': '"tags":{' },
      note: '{"tags":{"a":"1","b":"2","c":"3","d":"4","e":"5"}}',
    };
    assert.equal(guard({ source: 's', metrics: [tricky] }, 'submission'), undefined);
    // A key repeated within the tags: how many distinct keys there are is left to the route.
    const repeated = `{"source":"s","metrics":[{"name":"a","value":1,"tags":{"k":"v","k":"w",${JSON.stringify(tags(MAX + 1)).slice(1, -1)}}}]}`;
    assert.equal(guard(repeated, 'submission'), undefined);
    assert.equal(decodeField(repeated, 'submission'), 'metrics[0].tags');
    // More points than the route takes: it answers 413 for that before it looks at tags.
    const many = { source: 's', metrics: [{ ...point, tags: over }, point, point, point] };
    assert.equal(guard(many, 'submission', 3), undefined);
    assert.equal(guard(many, 'submission', 4), 'metrics[0].tags');
  });

  it('gives up on what it does not follow: an unterminated body, mismatched brackets, deep nesting', () => {
    assert.equal(guard('{"source":"s","metrics":[{"tags":{"a":"b', 'submission'), undefined);
    assert.equal(
      guard(`{"source":"s","metrics":[{"tags":${JSON.stringify(tags(MAX + 1))}}}]`, 'submission'),
      undefined,
    );
    assert.equal(guard('}}}]]]', 'submission'), undefined);
    const deep = `{"source":"s","metrics":[{"name":"a","value":1,"tags":${JSON.stringify(tags(MAX + 1))},"x":${'['.repeat(100)}${']'.repeat(100)}}]}`;
    assert.equal(guard(deep, 'submission'), undefined);
  });

  it('names a point only where decode.ts refuses, and the same one when nothing else is wrong', () => {
    const key = fc.stringMatching(/^[a-z]{1,6}$/);
    const cleanPoint = fc.record({
      name: fc.constant('cpu'),
      value: fc.integer(),
      tags: fc.dictionary(key, key, { maxKeys: 2 * MAX }),
    });
    const noisyPoint = fc.record(
      {
        name: fc.oneof(fc.constant('cpu'), fc.constant('1bad')),
        value: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant('x')),
        tags: fc.oneof(
          fc.dictionary(key, fc.oneof(fc.string({ maxLength: 6 }), fc.constant('{"tags":['), fc.integer()), {
            maxKeys: 2 * MAX,
          }),
          fc.constant([]),
        ),
        meta: fc.dictionary(key, fc.dictionary(key, fc.string({ maxLength: 4 }), { maxKeys: 2 * MAX }), { maxKeys: 2 }),
      },
      { requiredKeys: ['name', 'value'] },
    );
    const body = (point: fc.Arbitrary<unknown>) =>
      fc.oneof(
        fc.record({
          shape: fc.constant('submission' as const),
          body: fc.record({ source: fc.constant('s'), metrics: fc.array(point, { maxLength: 6 }) }),
        }),
        fc.record({
          shape: fc.constant('batches' as const),
          body: fc.record({
            batches: fc.array(fc.record({ source: fc.constant('s'), metrics: fc.array(point, { maxLength: 4 }) }), {
              maxLength: 3,
            }),
          }),
        }),
        fc.record({
          shape: fc.constant('submission' as const),
          body: fc.record({
            service: fc.constant('api'),
            metric_type: fc.constant('m'),
            value: fc.integer(),
            tags: fc.dictionary(key, key, { maxKeys: 2 * MAX }),
          }),
        }),
      );
    const runs = Number(process.env.JSON_SCAN_RUNS ?? 1000);
    fc.assert(
      fc.property(body(cleanPoint), ({ shape, body }) => {
        assert.equal(guard(body, shape), decodeField(body, shape));
      }),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(body(noisyPoint), ({ shape, body }) => {
        const named = guard(body, shape);
        if (named !== undefined)
          assert.notEqual(decodeField(body, shape), undefined, `decode.ts accepted what the guard named ${named}`);
      }),
      { numRuns: runs },
    );
  });
});

describe('oversizedTagFilters', () => {
  const MAXV = MAX_TAG_FILTER_VALUES;
  const filters = (body: unknown, shape: 'multi' | 'single') => oversizedTagFilters(text(body), shape, MAXV);
  const values = (n: number, prefix = 'h') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  /** parseTags's refusal of a filter for its size: the parameter it names, or undefined. */
  const refusedAs = (tags: unknown, name: string): string | undefined => {
    try {
      parseTags(tags, name);
      return undefined;
    } catch (err) {
      assert.ok(err instanceof ApiError, String(err));
      if (!/may hold at most 1000 key:value filters/.test(err.message)) return undefined; // refused for its form
      return (err.details as { parameter: string }).parameter;
    }
  };

  it('names the filter past the limit in every form, as parseTags does', () => {
    const cases: Array<[unknown, 'multi' | 'single', unknown, string]> = [
      [
        { queries: [{ metric: 'm', tags: { host: values(MAXV + 1) } }] },
        'multi',
        { host: values(MAXV + 1) },
        'queries[0].tags',
      ],
      [
        {
          queries: [
            { metric: 'm', tags: { a: values(MAXV) } },
            { metric: 'm', tags: { a: values(500), b: values(501) } },
          ],
        },
        'multi',
        { a: values(500), b: values(501) },
        'queries[1].tags',
      ],
      [{ metric: 'm', tags: values(MAXV + 1, 'host:') }, 'single', values(MAXV + 1, 'host:'), 'tags'],
      [{ metric: 'm', tags: Object.fromEntries(values(MAXV + 1).map((k) => [k, 'v'])) }, 'single', null, 'tags'],
      // A key `tags` inside the filter is one of its keys: its values count.
      [{ metric: 'm', tags: { tags: values(MAXV + 1) } }, 'single', { tags: values(MAXV + 1) }, 'tags'],
    ];
    for (const [body, shape, tags, field] of cases) {
      assert.equal(filters(body, shape), field);
      assert.equal(refusedAs(tags ?? (body as { tags: unknown }).tags, field), field);
    }
    const nothing: Array<[unknown, 'multi' | 'single']> = [
      [{ queries: [{ metric: 'm', tags: { a: values(MAXV - 1), b: 'x' } }] }, 'multi'],
      [{ metric: 'm', tags: values(MAXV, 'host:') }, 'single'],
      [{ metric: 'm', group_by: values(5000) }, 'single'],
      [{ queries: [{ metric: 'm' }], tags: { a: values(MAXV + 1) } }, 'multi'], // not read there
      [{ queries: [{ metric: 'm', extra: { tags: { a: values(MAXV + 1) } } }] }, 'multi'],
      [{ metric: ['cpu', { tags: { a: values(MAXV + 1) } }] }, 'single'],
      // A malformed value before the long list: parseTags names that first.
      [{ metric: 'm', tags: { a: 5, b: values(MAXV + 1) } }, 'single'],
    ];
    for (const [body, shape] of nothing)
      assert.equal(filters(body, shape), undefined, JSON.stringify(body).slice(0, 100));
    // JavaScript visits array-index keys first: a malformed "0" comes before the long list there.
    assert.equal(filters({ metric: 'm', tags: { a: values(MAXV + 1), 0: 1 } }, 'single'), undefined);
    assert.equal(filters({ metric: 'm', tags: { a: values(MAXV + 1), 0: 'x' } }, 'single'), 'tags');
    // A repeated key: JSON.parse keeps the last value.
    assert.equal(
      filters(`{"metric":"m","tags":{"a":${JSON.stringify(values(MAXV + 1))},"a":"x"}}`, 'single'),
      undefined,
    );
    assert.equal(
      filters(`{"metric":"m","tags":{"a":"x"},"tags":${JSON.stringify(values(MAXV + 1, 'k:'))}}`, 'single'),
      undefined,
    );
  });

  it('names a filter exactly when parseTags refuses it for its size', () => {
    const word = fc.oneof(fc.stringMatching(/^[a-z]{1,3}$/), fc.stringMatching(/^[0-9]{1,2}$/));
    const entry = fc.oneof(
      { weight: 4, arbitrary: word },
      { weight: 4, arbitrary: fc.array(word, { minLength: 1, maxLength: 60 }) },
      { weight: 1, arbitrary: fc.array(fc.oneof(word, fc.integer()), { maxLength: 60 }) },
      { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), fc.constant({ a: 'b' }), fc.constant([])) },
    );
    const objectForm = fc.dictionary(word, entry, { maxKeys: 40 });
    const arrayForm = fc.array(
      fc.oneof(
        word.map((w) => `${w}:${w}`),
        fc.integer(),
      ),
      { maxLength: MAXV + 100 },
    );
    fc.assert(
      fc.property(fc.oneof(objectForm, arrayForm), (tags) => {
        assert.equal(filters({ metric: 'm', tags }, 'single'), refusedAs(tags, 'tags'));
      }),
      { numRuns: 400 },
    );
  });
});
