import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/common/errors.js';
import { decodeAppMetrics, decodeBatches, decodeSubmission, DecodeContext } from '../../src/ingestion/decode.js';
import { oversizedTagFilters, oversizedTags } from '../../src/common/tag-guard.js';
import { MAX_TAG_FILTER_VALUES, parseTags } from '../../src/query/query-spec.js';

/**
 * The byte-level look for oversized `tags` values (tag-guard.ts) against what the routes do after
 * JSON.parse: on ingest bodies whatever it names, decode.ts refuses too, naming the same field
 * when nothing before it in the body is wrong; on query bodies it names a filter exactly when
 * query-spec.ts's parseTags refuses it for its size. It names nothing within the limits.
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
const guard = (body: unknown) =>
  oversizedTags(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), MAX);
const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`]));

/** decode.ts's first problem's field for a body, or undefined when it accepts it. */
function decodeField(body: unknown, decode: (b: unknown, c: DecodeContext) => unknown): string | undefined {
  try {
    decode(body, ctx);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.getStatus(), 400);
    return (err.details as { field: string }).field;
  }
}

describe('oversizedTags', () => {
  it('names the tags of the first point past the limit, as decode.ts does, in every shape', () => {
    const cases: Array<[unknown, (b: unknown, c: DecodeContext) => unknown, string]> = [
      [{ source: 's', metrics: [{ name: 'a', value: 1, tags: tags(MAX + 1) }] }, decodeSubmission, 'metrics[0].tags'],
      [
        {
          source: 's',
          metrics: [
            { name: 'a', value: 1, tags: tags(MAX) },
            { name: 'b', value: 2, tags: tags(100_000) },
          ],
        },
        decodeSubmission,
        'metrics[1].tags',
      ],
      [
        {
          batches: [
            { source: 's', metrics: [] },
            { source: 't', metrics: [{ name: 'a', value: 1, tags: tags(9) }] },
          ],
        },
        decodeBatches,
        'batches[1].metrics[0].tags',
      ],
      [{ service: 'api', metric_type: 'latency', value: 1, tags: tags(MAX + 1) }, decodeSubmission, 'tags'],
      [
        { batches: [{ service: 'api', metric_type: 'latency', value: 1, tags: tags(MAX + 1) }] },
        decodeBatches,
        'batches[0].tags',
      ],
      [
        { metrics: [{ name: 'a', value: 1, timestamp: NOW, tags: tags(MAX + 1) }] },
        (b, c) => decodeAppMetrics('app', b, c),
        'metrics[0].tags',
      ],
    ];
    for (const [body, decode, field] of cases) {
      assert.equal(guard(body), field, JSON.stringify(body).slice(0, 100));
      assert.equal(decodeField(body, decode), field);
    }
  });

  it('counts no further than it must, and leaves a body within the limit alone', () => {
    assert.equal(guard({ source: 's', metrics: [{ name: 'a', value: 1, tags: tags(MAX) }] }), undefined);
    // Other objects may hold any number of keys: only the value of a key `tags` is a point's tags.
    assert.equal(guard({ source: 's', metrics: [{ name: 'a', value: 1, extra: tags(50) }] }), undefined);
    assert.equal(guard({ tags: [tags(50)] }), undefined);
    // Braces, brackets, colons, commas and escaped quotes inside strings are text.
    const tricky = {
      name: 'a',
      value: 1,
      tags: { 'k"{': '}]:,', 'x\\': '"tags":{' },
      note: '{"tags":{"a":1,"b":2,"c":3,"d":4,"e":5}}',
    };
    assert.equal(guard({ source: 's', metrics: [tricky] }), undefined);
  });

  it('reads an escaped key `tags`, and names fields as decode.ts does', () => {
    const text = `{"source":"s","m\\u0065trics":[{"name":"a","value":1,"t\\u0061gs":${JSON.stringify(tags(MAX + 1))}}]}`;
    assert.equal(guard(text), 'metrics[0].tags');
    assert.equal(decodeField(JSON.parse(text), decodeSubmission), 'metrics[0].tags');
  });

  it('counts a repeated key each time (JSON.parse would keep the last)', () => {
    const repeated = `{"source":"s","metrics":[{"name":"a","value":1,"tags":{${Array(MAX + 1)
      .fill('"k":"v"')
      .join(',')}}}]}`;
    assert.equal(guard(repeated), 'metrics[0].tags');
  });

  it('gives up on what it does not follow: bad syntax, deep nesting', () => {
    assert.equal(guard('{"source":"s","metrics":[{"tags":{"a":"b'), undefined);
    assert.equal(guard('}}}]]]'), undefined);
    assert.equal(
      guard(`{"x":${'['.repeat(100)}{"tags":${JSON.stringify(tags(MAX + 1))}}${']'.repeat(100)}}`),
      undefined,
    );
  });

  it('names a field only where decode.ts refuses, and the same one when nothing before it is wrong', () => {
    const key = fc.stringMatching(/^[a-z]{1,6}$/);
    const point = fc.record(
      {
        name: fc.oneof(fc.constant('cpu'), fc.constant('1bad')),
        value: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant('x')),
        tags: fc.dictionary(key, fc.oneof(fc.string({ maxLength: 6 }), fc.constant('{"tags":[')), { maxKeys: 2 * MAX }),
        extra: fc.dictionary(key, fc.string({ maxLength: 4 }), { maxKeys: 10 }),
      },
      { requiredKeys: ['name', 'value'] },
    );
    const submission = fc.record({ source: fc.constant('s'), metrics: fc.array(point, { maxLength: 6 }) });
    fc.assert(
      fc.property(fc.oneof(submission, fc.record({ batches: fc.array(submission, { maxLength: 3 }) })), (body) => {
        const named = guard(body);
        const decode = 'batches' in body ? decodeBatches : decodeSubmission;
        const field = decodeField(body, decode);
        const points = 'batches' in body ? body.batches.flatMap((b) => b.metrics) : body.metrics;
        const over = points.some((p) => p.tags !== undefined && Object.keys(p.tags).length > MAX);
        assert.equal(named !== undefined, over);
        if (named === undefined) return;
        assert.notEqual(field, undefined, `decode.ts accepted what the guard named ${named}`);
        // decode.ts stops at a point's first problem; the guard only sees tags. When its field is
        // the first problem decode.ts reports, both name the same one.
        if (field!.endsWith('.tags')) assert.equal(named, field);
      }),
      { numRuns: Number(process.env.JSON_SCAN_RUNS ?? 2000) },
    );
  });
});

describe('oversizedTagFilters', () => {
  const MAXV = MAX_TAG_FILTER_VALUES;
  const filters = (body: unknown) => oversizedTagFilters(Buffer.from(JSON.stringify(body)), MAXV);
  const values = (n: number, prefix = 'h') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  /** parseTags's refusal of a filter for its size: the parameter it names, or undefined. */
  const refusedAs = (tags: unknown, name: string): string | undefined => {
    try {
      parseTags(tags, name);
      return undefined;
    } catch (err) {
      assert.ok(err instanceof ApiError, String(err));
      assert.match(err.message, /may hold at most 1000 key:value filters/);
      return (err.details as { parameter: string }).parameter;
    }
  };

  it('names the filter past the limit in every form, as parseTags does', () => {
    const cases: Array<[unknown, unknown, string]> = [
      [{ queries: [{ metric: 'm', tags: { host: values(MAXV + 1) } }] }, { host: values(MAXV + 1) }, 'queries[0].tags'],
      [
        {
          queries: [
            { metric: 'm', tags: { a: values(MAXV) } },
            { metric: 'm', tags: { a: values(500), b: values(501) } },
          ],
        },
        { a: values(500), b: values(501) },
        'queries[1].tags',
      ],
      [{ metric: 'm', tags: values(MAXV + 1, 'host:') }, values(MAXV + 1, 'host:'), 'tags'],
      [{ metric: 'm', tags: Object.fromEntries(values(MAXV + 1).map((k) => [k, 'v'])) }, null, 'tags'],
    ];
    for (const [body, tags, field] of cases) {
      assert.equal(filters(body), field);
      const t = tags ?? (body as { tags: unknown }).tags;
      assert.equal(refusedAs(t, field), field);
    }
    assert.equal(filters({ queries: [{ metric: 'm', tags: { a: values(MAXV - 1), b: 'x' } }] }), undefined);
    assert.equal(filters({ metric: 'm', tags: values(MAXV, 'host:') }), undefined);
    // Not a filter: other keys, and arrays of arrays, are not counted.
    assert.equal(filters({ metric: 'm', group_by: values(5000) }), undefined);
    assert.equal(filters({ metric: 'm', tags: { a: [values(MAXV + 1)] } }), undefined);
  });

  it('names a filter exactly when parseTags refuses it for its size', () => {
    const word = fc.stringMatching(/^[a-z]{1,3}$/);
    const objectForm = fc.dictionary(word, fc.oneof(word, fc.array(word, { minLength: 1, maxLength: 60 })), {
      maxKeys: 40,
    });
    const arrayForm = fc.array(
      fc.tuple(word, word).map(([k, v]) => `${k}:${v}`),
      { maxLength: MAXV + 100 },
    );
    fc.assert(
      fc.property(fc.oneof(objectForm, arrayForm), (tags) => {
        assert.equal(filters({ metric: 'm', tags }), refusedAs(tags, 'tags'));
      }),
      { numRuns: 300 },
    );
  });
});
