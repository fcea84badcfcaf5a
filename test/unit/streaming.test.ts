import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ApiError } from '../../src/common/errors.js';
import { CLOSE_TOO_SLOW, Sink, StreamConnection } from '../../src/streaming/connection.js';
import { IsoClock, sseData, sseEvent, TemplateCache, wsMetricUpdate } from '../../src/streaming/encode.js';
import { IntervalState } from '../../src/streaming/interval-state.js';
import { ReplayRing } from '../../src/streaming/replay-ring.js';
import { parseIntervalId, parseLiveId, parseSseSpec } from '../../src/streaming/sse-spec.js';
import { matches, parseFilter, SubscriptionIndex } from '../../src/streaming/stream-filter.js';
import type { AppConfig } from '../../src/config/config.js';
import { PointBatchBuilder, seriesKey } from '../../src/storage/point-batch.js';
import type { CommitListener, PointWriter } from '../../src/storage/point-writer.js';
import { LiveTarget } from '../../src/streaming/sse.service.js';
import { StreamHub } from '../../src/streaming/stream-hub.js';
import type { HealthService } from '../../src/system/health.service.js';

const series = (metric: string, source: string, tags: Record<string, string> = {}, unit: string | null = null) => {
  const tagsKey = JSON.stringify(Object.fromEntries(Object.entries(tags).sort()));
  return { key: seriesKey(metric, source, tagsKey), metric, source, tags, unit };
};

describe('stream filters', () => {
  it('parse the WebSocket and the query-string forms alike', () => {
    const ws = parseFilter({ metrics: ['cpu', 'mem'], sources: ['a'], tags: { host: ['h1', 'h2'], dc: 'eu' } });
    const qs = parseFilter(
      { metrics: 'cpu,mem', sources: 'a', tags: ['host:h1', 'host:h2', 'dc:eu'] },
      'INVALID_QUERY',
    );
    assert.deepEqual(ws, qs);
    assert.deepEqual(parseFilter({}), { metrics: null, sources: null, tags: [] });
  });

  it('match every part: any listed metric, any listed source, every tag key with one of its values', () => {
    const f = parseFilter({ metrics: ['cpu'], sources: ['a', 'b'], tags: { host: ['h1', 'h2'] } });
    assert.ok(matches(f, series('cpu', 'b', { host: 'h2', extra: 'x' })));
    assert.ok(!matches(f, series('cpu', 'c', { host: 'h2' })));
    assert.ok(!matches(f, series('mem', 'a', { host: 'h1' })));
    assert.ok(!matches(f, series('cpu', 'a', { host: 'h3' })));
    assert.ok(!matches(f, series('cpu', 'a')));
  });

  it('refuse what would be unbounded or malformed, naming the field', () => {
    const field = (input: object) => {
      try {
        parseFilter(input);
      } catch (err) {
        return (err as { details: { field: string } }).details.field;
      }
      return undefined;
    };
    assert.equal(field({ metrics: 7 }), 'metrics');
    assert.equal(field({ sources: ['ok', ''], metrics: [null] }), 'metrics[0]');
    assert.equal(field({ metrics: Array.from({ length: 1001 }, (_, i) => `m${i}`) }), 'metrics');
    assert.equal(
      field({
        metrics: Array.from({ length: 200 }, (_, i) => `m${i}`),
        sources: Array.from({ length: 200 }, (_, i) => `s${i}`),
      }),
      'sources',
    );
    assert.equal(field({ tags: { host: 5 } }), 'tags');
  });
});

describe('subscription index', () => {
  it('finds exactly the subscriptions that match a series, each target once', () => {
    const idx = new SubscriptionIndex<string>();
    idx.add(parseFilter({ metrics: ['cpu'] }), 'cpu-any-source');
    idx.add(parseFilter({ sources: ['a'] }), 'any-metric-of-a');
    idx.add(parseFilter({}), 'everything');
    idx.add(parseFilter({ metrics: ['cpu'], sources: ['a'], tags: { host: 'h1' } }), 'cpu-a-h1');
    idx.add(parseFilter({ metrics: ['cpu', 'mem'], sources: ['a', 'b'] }), 'cpu-any-source'); // same target twice
    const got = (s: ReturnType<typeof series>) => [...idx.match(s, s.key)].sort();
    assert.deepEqual(got(series('cpu', 'a', { host: 'h1' })), [
      'any-metric-of-a',
      'cpu-a-h1',
      'cpu-any-source',
      'everything',
    ]);
    assert.deepEqual(got(series('cpu', 'z')), ['cpu-any-source', 'everything']);
    assert.deepEqual(got(series('disk', 'z')), ['everything']);
  });

  it('forgets removed subscriptions, also in its cache', () => {
    const idx = new SubscriptionIndex<string>();
    const e = idx.add(parseFilter({ metrics: ['cpu'] }), 'x');
    const s = series('cpu', 'a');
    assert.deepEqual(idx.match(s, s.key), ['x']);
    idx.remove(e);
    assert.deepEqual(idx.match(s, s.key), []);
    assert.equal(idx.size, 0);
  });
});

describe('stream encoding', () => {
  it('builds the reference metric_update and SSE data exactly as JSON.stringify would', () => {
    const s = series('cpu_usage', 'fl_server', { host: 'fl-server-01', experiment_id: 'exp_001' }, 'percent');
    const tpl = new TemplateCache().get(s);
    const iso = new IsoClock().iso(Date.UTC(2024, 0, 15, 10, 30));
    assert.deepEqual(JSON.parse(wsMetricUpdate(tpl, iso, 47.8)), {
      type: 'metric_update',
      source: 'fl_server',
      timestamp: '2024-01-15T10:30:00.000Z',
      metric: {
        name: 'cpu_usage',
        value: 47.8,
        unit: 'percent',
        tags: { host: 'fl-server-01', experiment_id: 'exp_001' },
      },
    });
    assert.deepEqual(JSON.parse(sseData(tpl, iso, -0.5)), {
      metric: 'cpu_usage',
      value: -0.5,
      timestamp: '2024-01-15T10:30:00.000Z',
      source: 'fl_server',
      unit: 'percent',
      tags: s.tags,
    });
    assert.equal(JSON.parse(wsMetricUpdate(tpl, iso, NaN)).metric.value, null);
    const quoted = new TemplateCache().get(series('a"b', 'line\nbreak', { 'k\\': '"v"' }));
    assert.equal(JSON.parse(wsMetricUpdate(quoted, iso, 1)).source, 'line\nbreak');
    assert.equal(sseEvent('{}', '7', 'gap'), 'event: gap\nid: 7\ndata: {}\n\n');
  });
});

describe('replay ring', () => {
  const batch = (start: number, n: number) => {
    const b = new PointBatchBuilder();
    const s = b.addSeries('m', 'src', {}, null);
    for (let i = 0; i < n; i++) b.push(s, start + i, start + i);
    return b.build();
  };

  it('numbers points in commit order and replays what it still holds', () => {
    const ring = new ReplayRing(5);
    assert.equal(ring.push(batch(100, 3), Int32Array.of(9)), 1);
    assert.equal(ring.push(batch(200, 4), Int32Array.of(9)), 4);
    assert.deepEqual([ring.first, ring.last], [3, 7]);
    const seen: number[] = [];
    ring.forEachAfter(4, (seq, _s, id, t) => (seen.push(seq * 1000 + t - 200), id === 9));
    assert.deepEqual(seen, [5001, 6002, 7003]);
    assert.ok(ring.covers(2) && ring.covers(7));
    assert.ok(!ring.covers(1), 'point 2 is gone: a replay after 1 would be incomplete');
  });
});

describe('slow clients', () => {
  class FakeSink implements Sink {
    buffered = 0;
    sent: string[] = [];
    closedWith?: number;
    bufferedAmount = () => this.buffered;
    /** Callbacks of sends that asked to hear when their message left, in order. */
    pending: Array<(err?: Error | null) => void> = [];
    send = (d: string, sent?: (err?: Error | null) => void) => {
      this.sent.push(d);
      if (sent) this.pending.push(sent);
    };
    close = (code: number) => void (this.closedWith = code);
  }
  const make = () => {
    const sink = new FakeSink();
    const cutOff: number[] = [];
    const c = new StreamConnection(
      1,
      'ws',
      'test',
      sink,
      { bufferBytes: 100, slowClientMs: 1000 },
      (n) => `skipped ${n}`,
      (x) => cutOff.push(x.id),
    );
    return { sink, c, cutOff };
  };

  it('skip updates past the buffer limit and are told how many once they catch up', () => {
    const { sink, c } = make();
    assert.ok(c.deliver('a', 0));
    sink.buffered = 101;
    assert.ok(!c.deliver('b', 10));
    assert.ok(!c.deliver('c', 20));
    sink.buffered = 0;
    assert.ok(c.deliver('d', 30));
    assert.deepEqual(sink.sent, ['a', 'skipped 2', 'd']);
    assert.equal(c.skippedTotal, 2);
  });

  it('are told how many they missed once they catch up, also when no further update comes', () => {
    const { sink, c } = make();
    sink.buffered = 101;
    assert.ok(!c.deliver('a', 0));
    assert.ok(!c.deliver('b', 10));
    c.check(500);
    assert.deepEqual(sink.sent, [], 'still behind: nothing yet');
    sink.buffered = 0;
    c.check(1000);
    assert.deepEqual(sink.sent, ['skipped 2']);
    c.check(2000);
    assert.ok(c.deliver('c', 2100));
    assert.deepEqual(sink.sent, ['skipped 2', 'c'], 'told once');
  });

  it('pace a replay: send while there is room, then wait until the message that filled it has left', () => {
    const { sink, c } = make();
    let resumed = 0;
    const resume = () => resumed++;
    assert.ok(c.pace('x'.repeat(60), resume));
    sink.buffered = 60;
    assert.ok(!c.pace('y'.repeat(60), resume), 'past bufferBytes: wait');
    assert.equal(sink.sent.length, 2, 'the message that filled the buffer is sent, not skipped');
    assert.equal(c.skippedTotal, 0);
    assert.equal(sink.pending.length, 1);
    sink.buffered = 0;
    sink.pending[0]();
    assert.equal(resumed, 1);
    // A connection that ends meanwhile is not resumed.
    assert.ok(!c.pace('z'.repeat(200), resume));
    c.close(1000, 'bye');
    sink.pending[1](new Error('destroyed'));
    assert.equal(resumed, 1);
  });

  it('are cut off when a paced replay waits on them for the slow-client time, even just under the limit', () => {
    const { sink, c, cutOff } = make();
    assert.ok(!c.pace('y'.repeat(200), () => assert.fail('never resumed'), 0));
    sink.buffered = 90; // the kernel took part of it, then the client stopped reading
    c.check(500);
    assert.equal(sink.closedWith, undefined);
    c.check(1000);
    assert.equal(sink.closedWith, CLOSE_TOO_SLOW);
    assert.deepEqual(cutOff, [1]);
  });

  it('are cut off with 1013 once their buffer has stayed full for the slow-client time', () => {
    const { sink, c, cutOff } = make();
    sink.buffered = 500;
    c.deliver('x', 0);
    c.deliver('x', 999);
    assert.equal(sink.closedWith, undefined);
    c.check(1000);
    assert.equal(sink.closedWith, CLOSE_TOO_SLOW);
    assert.deepEqual(cutOff, [1]);
    assert.ok(!c.deliver('y', 2000));
  });

  it('are cut off when the last message took them past the limit and nothing more comes', () => {
    const { sink, c } = make();
    assert.ok(c.deliver('x', 0));
    sink.buffered = 500; // that message did not fit: queued, nothing skipped
    c.check(100);
    c.check(1099);
    assert.equal(sink.closedWith, undefined);
    c.check(1100);
    assert.equal(sink.closedWith, CLOSE_TOO_SLOW);
  });

  it('that drain in time are not cut off', () => {
    const { sink, c } = make();
    sink.buffered = 500;
    c.deliver('x', 0);
    sink.buffered = 0;
    c.check(500);
    sink.buffered = 500;
    c.deliver('x', 900);
    c.check(1500);
    assert.equal(sink.closedWith, undefined);
  });
});

describe('SSE replay (Last-Event-ID)', () => {
  /** A client that reads only when told to: what it has not read stays queued and counts as buffered. */
  class SlowSink implements Sink {
    queue: Array<{ data: string; sent?: (err?: Error | null) => void }> = [];
    read: string[] = [];
    bufferedAmount = () => this.queue.reduce((n, q) => n + q.data.length, 0);
    send = (data: string, sent?: (err?: Error | null) => void) => void this.queue.push({ data, sent });
    close = () => undefined;
    /** Reads everything queued, as the kernel taking it would: each write's callback runs. */
    drain(): void {
      const taken = this.queue;
      this.queue = [];
      for (const q of taken) this.read.push(q.data);
      for (const q of taken) q.sent?.();
    }
  }

  /** A hub fed by a fake writer, and a live SSE target on it resuming after sequence number 0. */
  const setup = (replayPoints: number) => {
    let commitTo!: CommitListener;
    const writer = { onCommit: (fn: CommitListener) => ((commitTo = fn), () => undefined) };
    const config = {
      streams: { replayPoints, maxConnections: 10, bufferBytes: 1_000, slowClientMs: 60_000, heartbeatMs: 60_000 },
    };
    const hub = new StreamHub(
      writer as unknown as PointWriter,
      config as unknown as AppConfig,
      { register: () => undefined } as unknown as HealthService,
    );
    let next = 0;
    const commit = (n: number) => {
      const b = new PointBatchBuilder();
      const s = b.addSeries('m', 'src', {}, null);
      for (let i = 0; i < n; i++, next++) b.push(s, 1_700_000_000_000 + next, next);
      commitTo(b.build(), Int32Array.of(1));
    };
    const sink = new SlowSink();
    const connect = () => {
      const c = hub.admit('sse', 'test', sink, (count) => sseEvent(JSON.stringify({ count }), undefined, 'skipped'));
      const filter = parseFilter({ metrics: ['m'] });
      const target = new LiveTarget(c, hub, filter);
      hub.subscribe(filter, target);
      assert.ok(target.replayAfter(0));
      return c;
    };
    /** What the client read: point values, and other events by name. */
    const got = () =>
      sink.read.map((m) =>
        m.startsWith('event: ') ? m.slice(7, m.indexOf('\n')) : JSON.parse(m.split('data: ')[1]).value,
      );
    return { hub, commit, sink, connect, got };
  };

  it('sends each point once and in commit order, also those committed while it waits for the client', () => {
    const { hub, commit, sink, connect, got } = setup(1_000);
    commit(100);
    connect();
    const first = sink.queue.length;
    assert.ok(first > 1 && first < 20, `${first} messages fit the client's buffer; the replay waits`);
    commit(50); // while the replay waits: left to it
    assert.equal(sink.queue.length, first);
    for (let i = 0; i < 100 && sink.queue.length; i++) sink.drain();
    commit(5); // live now (fewer than fill the client's buffer)
    sink.drain();
    assert.deepEqual(
      got(),
      Array.from({ length: 155 }, (_, i) => i),
    );
    hub.beforeApplicationShutdown();
  });

  it('goes on live with a gap when the ring moves past a replay its client reads too slowly', () => {
    const { hub, commit, sink, connect, got } = setup(50);
    commit(40);
    const c = connect();
    const replayed = sink.queue.length;
    commit(30); // evicts what the waiting replay was to send next: gap, then live, where the full client skips
    assert.deepEqual(got(), []);
    sink.drain();
    c.check(Date.now()); // caught up: told what it missed
    commit(1);
    sink.drain();
    assert.deepEqual(got(), [...Array.from({ length: replayed }, (_, i) => i), 'gap', 'skipped', 70]);
    assert.match(sink.read[replayed], new RegExp(`"last_event_id":"${hub.boot}\\.${replayed}"`));
    assert.equal(c.skippedTotal, 30);
    hub.beforeApplicationShutdown();
  });
});

describe('streams per API key', () => {
  it('refuse a key past STREAM_MAX_CONNECTIONS_PER_KEY (429) while other keys still get in, and close the streams of one key', () => {
    const writer = { onCommit: () => () => undefined };
    const config = {
      streams: {
        replayPoints: 10,
        maxConnections: 10,
        maxConnectionsPerKey: 2,
        bufferBytes: 1_000,
        slowClientMs: 60_000,
        heartbeatMs: 60_000,
      },
    };
    const hub = new StreamHub(
      writer as unknown as PointWriter,
      config as unknown as AppConfig,
      { register: () => undefined } as unknown as HealthService,
    );
    const closed: string[] = [];
    const open = (name: string, keyId: number | null) =>
      hub.admit(
        'ws',
        name,
        { bufferedAmount: () => 0, send: () => undefined, close: (code) => void closed.push(`${name} ${code}`) },
        () => '',
        keyId,
      );
    const a1 = open('a1', 7);
    open('a2', 7);
    assert.throws(
      () => open('a3', 7),
      (err: ApiError) =>
        err.getStatus() === 429 && (err.body().details as { limit: string }).limit === 'STREAM_MAX_CONNECTIONS_PER_KEY',
    );
    open('b1', 8);
    open('anonymous', null);
    open('anonymous-2', null);
    open('anonymous-3', null); // keys off: only STREAM_MAX_CONNECTIONS counts
    hub.release(a1);
    open('a3', 7); // a slot of key 7 came free
    assert.equal(hub.closeKey(7), 2);
    assert.deepEqual(closed.sort(), ['a2 1008', 'a3 1008']);
    assert.equal(hub.closeKey(9), 0);
  });
});

describe('interval streams', () => {
  const s1 = series('load', 'h1'),
    s2 = series('load', 'h2');

  it('keep the latest point per series by point time, whatever the commit order', () => {
    const st = new IntervalState(5000, 'last', 10);
    st.add(1, s1, 2000, 5, 0);
    st.add(1, s1, 1000, 9, 0); // older point committed later
    st.add(2, s2, 1500, 7, 0);
    assert.deepEqual(
      st.take(5000).map((e) => [e.seriesId, e.time, e.value]),
      [
        [1, 2000, 5],
        [2, 1500, 7],
      ],
    );
    assert.equal(st.take(10_000).length, 2, 'every known series, every tick');
  });

  it('aggregate closed epoch-aligned buckets once, and drop late and far-ahead points', () => {
    const st = new IntervalState(1000, 'avg', 10);
    const now = 10_500;
    st.add(1, s1, 10_100, 2, now);
    st.add(1, s1, 10_900, 4, now);
    st.add(2, s2, 11_200, 8, now); // next bucket (a clock slightly ahead)
    st.add(2, s2, 13_000, 1, now); // too far ahead
    assert.deepEqual(
      st.take(11_000).map((e) => [e.seriesId, e.time, e.value, e.count]),
      [[1, 10_000, 3, 2]],
    );
    st.add(1, s1, 10_950, 100, 11_100); // late: its bucket was sent
    assert.deepEqual(
      st.take(12_000).map((e) => [e.seriesId, e.time, e.value]),
      [[2, 11_000, 8]],
    );
    assert.equal(st.dropped, 2);
  });

  it('cap the series they remember', () => {
    const st = new IntervalState(1000, 'last', 1);
    st.add(1, s1, 1, 1, 0);
    st.add(2, s2, 1, 1, 0);
    assert.equal(st.seriesCount, 1);
    assert.equal(st.dropped, 1);
  });
});

describe('SSE parameters', () => {
  it('read interval as seconds or a duration, and aggregation only with an interval', () => {
    assert.equal(parseSseSpec({ interval: '5' }, undefined).intervalMs, 5000);
    assert.equal(parseSseSpec({ interval: '1m', aggregation: 'max' }, undefined).aggregation, 'max');
    assert.equal(parseSseSpec({}, undefined).intervalMs, null);
    assert.throws(() => parseSseSpec({ aggregation: 'avg' }, undefined), /needs an interval/);
    assert.throws(() => parseSseSpec({ interval: '500ms' }, undefined), /interval/);
  });

  it('take Last-Event-ID from the header or, for clients that cannot set it, the query', () => {
    assert.equal(parseSseSpec({ last_event_id: 'q' }, 'h').lastEventId, 'h');
    assert.equal(parseSseSpec({ last_event_id: 'q' }, undefined).lastEventId, 'q');
    assert.deepEqual(parseLiveId('0a1b2c3d.42'), { boot: '0a1b2c3d', seq: 42 });
    assert.equal(parseLiveId('42'), undefined);
    assert.equal(parseIntervalId('1700000000000'), 1700000000000);
    assert.equal(parseIntervalId('x.1'), undefined);
  });
});
