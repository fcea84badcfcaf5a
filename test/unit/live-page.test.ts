import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { sseEvent } from '../../src/streaming/encode.js';

// The live page's helpers are plain browser modules (web/live.js, no build step); Node runs the same file.
const live = await import(new URL('../../../web/live.js', import.meta.url).href);

const MIN = 60_000;

describe('live page: granularities that fit the range', () => {
  it('offers only what the query API takes (at most 11,000 buckets), auto always', () => {
    assert.ok(live.granularityFits('auto', '7d'));
    assert.ok(!live.granularityFits('1s', '7d')); // 604,801 buckets: the API's 400
    assert.ok(!live.granularityFits('10s', '7d'));
    assert.ok(live.granularityFits('1m', '7d'));
    assert.ok(live.granularityFits('1s', '1h'));
    assert.ok(!live.granularityFits('1s', '24h'));
  });
});

describe('live page: reading Server-Sent Events', () => {
  const collect = (chunks: string[]) => {
    const events: any[] = [];
    const push = live.sseParser((e: any) => events.push(e));
    for (const c of chunks) push(c);
    return events;
  };

  it('reads what the service writes, however the bytes are split', () => {
    const text =
      'retry: 3000\n: connected to Timescope\n\n' +
      sseEvent('{"metric":"cpu","value":1}', 'a1.1') +
      sseEvent('{"reason":"x"}', undefined, 'gap') +
      sseEvent('{"metric":"cpu","value":2}', 'a1.2');
    const expected = [
      { id: 'a1.1', event: 'message', data: '{"metric":"cpu","value":1}' },
      { id: 'a1.1', event: 'gap', data: '{"reason":"x"}' }, // the last id is kept, as EventSource keeps it
      { id: 'a1.2', event: 'message', data: '{"metric":"cpu","value":2}' },
    ];
    assert.deepEqual(collect([text]), expected);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: text.length }), { maxLength: 12 }), (cuts) => {
        const at = [0, ...[...new Set(cuts)].sort((a, b) => a - b), text.length];
        const chunks = at.slice(1).map((end, i) => text.slice(at[i], end));
        assert.deepEqual(collect(chunks), expected);
      }),
    );
  });

  it('joins data lines, takes CRLF and CR line ends, and sends nothing for an event without data', () => {
    assert.deepEqual(collect(['data: a\r\ndata:b\r', '\n\r\nevent: x\n\nid: 7\rdata:  c\r\r\n']), [
      { id: null, event: 'message', data: 'a\nb' },
      { id: '7', event: 'message', data: ' c' },
    ]);
  });
});

describe('live page: folding a live point into the buckets', () => {
  const series = () =>
    live.seriesFromQuery(
      [
        { timestamp: new Date(0).toISOString(), value: 10 },
        { timestamp: new Date(2 * MIN).toISOString(), value: 20 },
        { timestamp: new Date(3 * MIN).toISOString(), value: null }, // a filled gap is not a point
      ],
      [
        { timestamp: new Date(0).toISOString(), value: 2 },
        { timestamp: new Date(2 * MIN).toISOString(), value: 4 },
      ],
    );

  it('reads a query answer with its counts', () => {
    assert.deepEqual(series(), { times: [0, 2 * MIN], values: [10, 20], counts: [2, 4] });
  });

  it('aggregates into an existing bucket as the query does', () => {
    const cases: Array<[string, number]> = [
      ['avg', (20 * 4 + 45) / 5],
      ['sum', 65],
      ['min', 20],
      ['max', 45],
      ['count', 21],
      ['last', 45],
      ['first', 20],
    ];
    for (const [aggregation, want] of cases) {
      const s = series();
      assert.equal(live.mergePoint(s, 2 * MIN + 59_999, 45, aggregation, MIN), 1);
      assert.equal(s.values[1], want, aggregation);
      assert.equal(s.counts[1], 5, aggregation);
      assert.equal(s.times.length, 2, aggregation);
    }
  });

  it('opens a new bucket at its epoch-aligned start, in time order, also for a late point', () => {
    const s = series();
    assert.equal(live.mergePoint(s, 5 * MIN + 30_000, 7, 'avg', MIN), 2);
    assert.equal(live.mergePoint(s, MIN + 1, 3, 'count', MIN), 1);
    assert.deepEqual(s, { times: [0, MIN, 2 * MIN, 5 * MIN], values: [10, 1, 20, 7], counts: [2, 1, 4, 1] });
  });

  it('drops buckets that slid out of the window', () => {
    const s = series();
    assert.equal(live.trimBefore(s, MIN), 1);
    assert.deepEqual(s, { times: [2 * MIN], values: [20], counts: [4] });
    assert.equal(live.trimBefore(s, 0), 0);
  });

  it('reads granularities as the query API writes them', () => {
    assert.equal(live.durationMs('30s'), 30_000);
    assert.equal(live.durationMs('5m'), 5 * MIN);
    assert.equal(live.durationMs('2w'), 14 * 86_400_000);
    assert.equal(live.durationMs('auto'), null);
    assert.equal(live.durationMs('5'), null);
  });
});
