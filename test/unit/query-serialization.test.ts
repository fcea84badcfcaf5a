import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { jsonNumber, QueryPoint, queryAnswerJson as answerBytes } from '../../src/query/query.serialization.js';

/** The writer's bytes as text, to compare with JSON.stringify's. */
const queryAnswerJson = (answer: object) => answerBytes(answer).toString('utf8');

const t0 = Date.parse('2026-12-05T17:25:00.000Z');
const points = [49.83771234512345, null, -0.5e-7, 1e21, -0, 3].map((v, i) => new QueryPoint(t0 + i * 300_000, v));
const base = {
  metric: 'cpu "quoted" \\ é \u2028',
  source: null,
  tags: { host: 'a', region: ['eu', 'us'], ['__proto__']: 'x' },
  granularity: '5m',
  aggregation: 'avg',
  fill: 'none',
  data_points: points,
  total_points: points.length,
  series_count: 2,
  rollup: '5m',
  from: '2026-12-05T17:22:50.000Z',
  to: '2026-12-06T17:22:50.000Z',
  query_time_ms: 0.75,
};

describe('the query answer writer', () => {
  it('writes what JSON.stringify writes', () => {
    assert.equal(queryAnswerJson(base), JSON.stringify(base));
    assert.equal(JSON.parse(queryAnswerJson(base)).data_points[0].timestamp, '2026-12-05T17:25:00.000Z');
  });

  it('groups, their points and properties it does not know, in their order', () => {
    const grouped = {
      ...base,
      source: 'host-0',
      rollup: null,
      groups: [
        { source: 'a', tags: { dc: null }, data_points: points, total_points: 6, series_count: 1 },
        { tags: {}, data_points: [], total_points: 0, series_count: 0, extra: [1, { x: 'y' }] },
        null,
        [1, 2],
        { toJSON: () => 'as text' },
        new Date(t0),
      ],
      note: 'new',
    };
    assert.equal(queryAnswerJson(grouped), JSON.stringify(grouped));
  });

  it('points that are not QueryPoints are written by JSON.stringify (other keys, other order, other types)', () => {
    const odd = {
      ...base,
      data_points: [
        { timestamp: 'with "quotes"', value: 1 },
        { value: 2, timestamp: 't' },
        { timestamp: 't', value: 3, count: 3 },
        { timestamp: 't', value: NaN },
        null,
        7,
        'text',
        points[0],
      ],
    };
    assert.equal(queryAnswerJson(odd), JSON.stringify(odd));
  });

  it('leaves out what JSON.stringify leaves out, and an empty answer', () => {
    const sparse = { ...base, source: undefined, f: () => 1, data_points: [] };
    assert.equal(queryAnswerJson(sparse), JSON.stringify(sparse));
    assert.equal(queryAnswerJson({}), '{}');
  });

  it('non-finite values become null, as JSON.stringify writes them', () => {
    assert.deepEqual([NaN, Infinity, -Infinity, null, 0, -2.5].map(jsonNumber), [null, null, null, null, 0, -2.5]);
    const made = [NaN, Infinity, -Infinity].map((v, i) => new QueryPoint(t0 + i, v));
    assert.deepEqual(
      made.map((p) => p.value),
      [null, null, null],
    );
    const answer = { ...base, data_points: made };
    assert.equal(queryAnswerJson(answer), JSON.stringify(answer));
  });

  it('writes any points as JSON.stringify does, in groups too (property)', () => {
    const time = fc.oneof(
      fc.integer({ min: 0, max: 253_402_300_799_999 }),
      fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }),
    );
    const value = fc.oneof(
      fc.double(),
      fc.constant(null),
      fc.integer(),
      fc.constantFrom(-0, 5e-324, 1e21, -1.7976931348623157e308),
    );
    const pts = fc.array(
      fc.tuple(time, value).map(([t, v]) => new QueryPoint(t, v)),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(pts, pts, (a, b) => {
        const answer = { ...base, data_points: a, groups: [{ tags: { k: 'v' }, data_points: b }] };
        assert.equal(queryAnswerJson(answer), JSON.stringify(answer));
      }),
      { numRuns: 300 },
    );
  });

  it('times outside 1970-9999 stay ISO 8601, as Date#toISOString writes them', () => {
    const far = [-1, 253_402_300_800_000].map((t) => new QueryPoint(t, 1));
    assert.deepEqual(
      far.map((p) => p.timestamp),
      ['1969-12-31T23:59:59.999Z', '+010000-01-01T00:00:00.000Z'],
    );
    const answer = { ...base, data_points: far };
    assert.equal(queryAnswerJson(answer), JSON.stringify(answer));
  });
});
