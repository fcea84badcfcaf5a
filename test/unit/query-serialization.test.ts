import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { jsonNumber, QUERY_RESULT_SCHEMA } from '../../src/query/query.serialization.js';

// What fastify writes for an answer of a route with this response schema (the serializer it compiles, as in the app).
const fastify = new FastifyAdapter({ logger: false }).getInstance();
let answer: unknown;
fastify.get('/q', { schema: { response: { 200: QUERY_RESULT_SCHEMA } } }, async () => answer);
before(() => fastify.ready());
after(() => fastify.close());
async function serialize(body: unknown): Promise<string> {
  answer = body;
  const r = await fastify.inject({ method: 'GET', url: '/q' });
  assert.equal(r.statusCode, 200, r.body);
  return r.body;
}

const points = [
  { timestamp: '2026-12-05T17:25:00.000Z', value: 49.83771234512345 },
  { timestamp: '2026-12-05T17:30:00.000Z', value: null },
  { timestamp: '2026-12-05T17:35:00.000Z', value: -0.5e-7 },
  { timestamp: '2026-12-05T17:40:00.000Z', value: 1e21 },
];
const base = {
  metric: 'cpu "quoted" \\ é \u2028',
  source: null,
  tags: { host: 'a', region: ['eu', 'us'], ['__proto__']: 'x' },
  granularity: '5m',
  aggregation: 'avg',
  fill: 'none',
  data_points: points,
  total_points: 4,
  series_count: 2,
  rollup: '5m',
  from: '2026-12-05T17:22:50.000Z',
  to: '2026-12-06T17:22:50.000Z',
  query_time_ms: 0.75,
};

describe('the query answer serializer', () => {
  it('writes what JSON.stringify writes', async () => assert.equal(await serialize(base), JSON.stringify(base)));

  it('keeps properties it does not list, after the listed ones (groups, and any field added later)', async () => {
    const grouped = {
      ...base,
      source: 'host-0',
      rollup: null,
      groups: [{ source: 'a', tags: { dc: null }, data_points: points, total_points: 4, series_count: 1 }],
    };
    assert.equal(await serialize(grouped), JSON.stringify(grouped));
    const extended = { ...base, data_points: [{ ...points[0], count: 3 }], note: 'new' };
    assert.equal(await serialize(extended), JSON.stringify(extended));
  });

  it('an empty answer', async () => {
    const empty = { ...base, data_points: [], total_points: 0, series_count: 0, rollup: null };
    assert.equal(await serialize(empty), JSON.stringify(empty));
  });

  it('non-finite values become null, as JSON.stringify writes them', async () => {
    assert.deepEqual([NaN, Infinity, -Infinity, null, 0, -2.5].map(jsonNumber), [null, null, null, null, 0, -2.5]);
    const odd = { ...base, data_points: [NaN, Infinity].map((v) => ({ timestamp: 't', value: jsonNumber(v) })) };
    assert.equal(
      await serialize(odd),
      JSON.stringify({ ...base, data_points: [NaN, Infinity].map((v) => ({ timestamp: 't', value: v })) }),
    );
  });
});
