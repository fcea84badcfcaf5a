import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import http from 'node:http';
import { StreamHub } from '../../src/streaming/stream-hub.js';
import { StreamingRepository } from '../../src/streaming/streaming.repository.js';
import { sseClient, wsClient } from '../support/stream-clients.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const iso = (ms: number) => new Date(ms).toISOString();

describeEachFlavour(
  'streams',
  (ctx) => {
    let port: number;
    let base: string;
    const send = async (
      source: string,
      metrics: Array<{ name: string; value: number; unit?: string; tags?: Record<string, string> }>,
      timestamp = Date.now(),
    ) => {
      const r = await ctx.t.post('/api/v1/metrics', { source, timestamp: iso(timestamp), metrics });
      assert.equal(r.status, 200, r.body);
    };

    before(async () => {
      port = await ctx.t.listen();
      base = `http://127.0.0.1:${port}`;
    });

    it('pushes every committed point that matches a WebSocket subscription, in the reference shape', async () => {
      const c = await wsClient(port, undefined, ctx.t.authHeaders);
      c.send({
        action: 'subscribe',
        id: 'r1',
        metrics: ['cpu_usage', 'memory_usage'],
        sources: ['fl_server'],
        tags: { experiment_id: 'exp_001' },
      });
      const ack = await c.next((m) => m.type === 'subscribed');
      assert.deepEqual(ack, {
        type: 'subscribed',
        subscription_id: 1,
        metrics: ['cpu_usage', 'memory_usage'],
        sources: ['fl_server'],
        tags: { experiment_id: 'exp_001' },
        request_id: 'r1',
      });
      const t = Date.now() - 1000;
      await send(
        'fl_server',
        [
          { name: 'cpu_usage', value: 47.8, unit: 'percent', tags: { host: 'fl-server-01', experiment_id: 'exp_001' } },
          { name: 'cpu_usage', value: 1, tags: { host: 'fl-server-01', experiment_id: 'exp_002' } }, // other experiment
          { name: 'disk_usage', value: 2, tags: { experiment_id: 'exp_001' } }, // other metric
        ],
        t,
      );
      await send('policy_engine', [{ name: 'cpu_usage', value: 3, tags: { experiment_id: 'exp_001' } }], t); // other source
      await send(
        'fl_server',
        [{ name: 'memory_usage', value: 512.5, unit: 'MB', tags: { experiment_id: 'exp_001' } }],
        t,
      );
      const mem = await c.next((m) => m.type === 'metric_update' && m.metric.name === 'memory_usage');
      const updates = c.messages.filter((m) => m.type === 'metric_update');
      assert.equal(updates.length, 2, JSON.stringify(updates));
      assert.deepEqual(updates[0], {
        type: 'metric_update',
        source: 'fl_server',
        timestamp: iso(t),
        metric: {
          name: 'cpu_usage',
          value: 47.8,
          unit: 'percent',
          tags: { experiment_id: 'exp_001', host: 'fl-server-01' },
        },
      });
      assert.equal(mem.metric.value, 512.5);
      await c.close();
    });

    it('unsubscribes, lists subscriptions, and sends each point once to a connection whatever overlaps', async () => {
      const c = await wsClient(port, undefined, ctx.t.authHeaders);
      c.send({ action: 'subscribe', metrics: ['req'] });
      c.send({ action: 'subscribe', sources: ['web'] });
      await waitFor(() => c.messages.filter((m) => m.type === 'subscribed').length === 2);
      await send('web', [{ name: 'req', value: 1 }]);
      await c.next((m) => m.type === 'metric_update');
      c.send({ action: 'list' });
      const list = await c.next((m) => m.type === 'subscriptions');
      assert.deepEqual(
        list.subscriptions.map((s: { subscription_id: number }) => s.subscription_id),
        [1, 2],
      );
      c.send({ action: 'unsubscribe', subscription_id: 1 });
      assert.deepEqual((await c.next((m) => m.type === 'unsubscribed')).subscription_ids, [1]);
      c.send({ action: 'unsubscribe', subscription_id: 1 });
      assert.equal((await c.next((m) => m.type === 'error')).error.code, 'RESOURCE_NOT_FOUND');
      await send('api', [{ name: 'req', value: 2 }]); // matched only the removed subscription
      await send('web', [{ name: 'other', value: 3 }]);
      await c.next((m) => m.type === 'metric_update' && m.metric.name === 'other');
      assert.deepEqual(
        c.messages.filter((m) => m.type === 'metric_update').map((m) => m.metric.value),
        [1, 3],
      );
      c.send({ action: 'unsubscribe' });
      const all = c.messages.length;
      assert.deepEqual((await c.next((m) => m.type === 'unsubscribed', all - 1)).subscription_ids, [2]);
      await c.close();
    });

    it('answers bad messages with an error message and keeps the socket open', async () => {
      const c = await wsClient(port, undefined, ctx.t.authHeaders);
      const bad: Array<[string | object, string]> = [
        ['not json', 'INVALID_REQUEST'],
        [[1, 2], 'INVALID_REQUEST'],
        [{ action: 'dance' }, 'INVALID_REQUEST'],
        [{ action: 'subscribe', metrics: 'cpu', sources: [42] }, 'INVALID_REQUEST'],
        [{ action: 'subscribe', tags: { host: 7 } }, 'INVALID_REQUEST'],
        [{ action: 'subscribe', metrics: Array.from({ length: 1001 }, (_, i) => `m${i}`) }, 'INVALID_REQUEST'],
      ];
      for (const [msg, code] of bad) {
        const from = c.messages.length;
        c.send(msg);
        const err = await c.next((m) => m.type === 'error', from);
        assert.equal(err.error.code, code, JSON.stringify(err));
        assert.ok(err.error.message);
      }
      const fieldErr = c.messages.find((m) => m.type === 'error' && m.error.details?.field === 'sources[0]');
      assert.ok(fieldErr, 'the error names the field');
      c.send({ action: 'ping', id: 7 });
      assert.equal((await c.next((m) => m.type === 'pong')).request_id, 7);
      await c.close();
    });

    it('closes a socket that sends an oversized frame (1009) or floods messages (1008)', async () => {
      const big = await wsClient(port, undefined, ctx.t.authHeaders);
      big.send({ action: 'subscribe', metrics: ['x'.repeat(70 * 1024)] });
      assert.equal((await big.closed).code, 1009);
      const flood = await wsClient(port, undefined, ctx.t.authHeaders);
      for (let i = 0; i < 101; i++) flood.send({ action: 'ping' });
      const closed = await flood.closed;
      assert.equal(closed.code, 1008);
      assert.equal(flood.messages.filter((m) => m.type === 'pong').length, 100);
    });

    it('caps subscriptions per connection and connections in all (documented limits)', async () => {
      const c = await wsClient(port, undefined, ctx.t.authHeaders);
      for (let i = 0; i < 3; i++) c.send({ action: 'subscribe', metrics: [`m${i}`] });
      await waitFor(() => c.messages.filter((m) => m.type === 'subscribed').length === 3);
      c.send({ action: 'subscribe', metrics: ['m3'] });
      const err = await c.next((m) => m.type === 'error');
      assert.equal(err.error.details.limit, 'STREAM_MAX_SUBSCRIPTIONS');
      // (metric, source) pairs are capped per connection, over all its subscriptions.
      const wide = await wsClient(port, undefined, ctx.t.authHeaders);
      const names = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}${i}`);
      wide.send({ action: 'subscribe', metrics: names('m', 20), sources: names('s', 30) });
      await wide.next((m) => m.type === 'subscribed');
      wide.send({ action: 'subscribe', metrics: names('n', 20), sources: names('s', 30) });
      assert.equal((await wide.next((m) => m.type === 'error')).error.details.max_pairs, 1000);
      wide.send({ action: 'subscribe', metrics: names('m', 40), sources: names('s', 30) });
      assert.equal(
        (await wide.next((m) => m.type === 'error' && m.error.details.field === 'sources')).error.code,
        'INVALID_REQUEST',
      );
      await wide.close();
      const hub = ctx.t.app.get(StreamHub);
      await waitFor(() => hub.connectionCount === 1);
      const more = [];
      for (let i = 1; i < 4; i++) more.push(await wsClient(port, undefined, ctx.t.authHeaders));
      await waitFor(() => hub.connectionCount === 4);
      const refused = await wsClient(port, undefined, ctx.t.authHeaders);
      assert.equal((await refused.closed).code, 1013);
      const sse = await sseClient(`${base}/api/v1/metrics/stream`, ctx.t.authHeaders);
      assert.equal(sse.status, 503);
      assert.equal(JSON.parse(sse.body!).error.details.limit, 'STREAM_MAX_CONNECTIONS');
      for (const x of [c, ...more]) await x.close();
      await waitFor(() => hub.connectionCount === 0);
    });

    it('streams points over SSE with ids, and resumes from Last-Event-ID', async () => {
      const s = await sseClient(`${base}/api/v1/metrics/stream?metrics=temp&sources=room1,room2`, ctx.t.authHeaders);
      assert.equal(s.status, 200);
      assert.match(s.headers.get('content-type')!, /^text\/event-stream/);
      const t = Date.now() - 5000;
      await send('room1', [{ name: 'temp', value: 21.5, unit: 'C', tags: { floor: '1' } }], t);
      await send('room3', [{ name: 'temp', value: 99 }], t);
      await send('room2', [{ name: 'temp', value: 19 }], t);
      await s.next((e) => e.json?.value === 19);
      assert.deepEqual(
        s.events.map((e) => e.json.value),
        [21.5, 19],
      );
      assert.deepEqual(s.events[0].json, {
        metric: 'temp',
        value: 21.5,
        timestamp: iso(t),
        source: 'room1',
        unit: 'C',
        tags: { floor: '1' },
      });
      assert.match(s.events[0].id!, /^[0-9a-f]{8}\.\d+$/);
      const lastId = s.events[1].id!;
      s.close();
      await s.ended;
      await send('room1', [{ name: 'temp', value: 22 }], t + 1000);
      await send('room1', [{ name: 'temp', value: 23 }], t + 2000);
      const resumed = await sseClient(`${base}/api/v1/metrics/stream?metrics=temp&sources=room1,room2`, {
        ...ctx.t.authHeaders,
        'last-event-id': lastId,
      });
      await resumed.next((e) => e.json?.value === 23);
      assert.deepEqual(
        resumed.events.map((e) => e.json.value),
        [22, 23],
      );
      // A point's microseconds reach the stream as they are stored.
      const micro = `${iso(t + 3000).slice(0, -1)}456Z`;
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'room1',
        timestamp: micro,
        metrics: [{ name: 'temp', value: 24 }],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal((await resumed.next((e) => e.json?.value === 24)).json.timestamp, micro);
      resumed.close();
      const unknown = await sseClient(
        `${base}/api/v1/metrics/stream?metrics=temp&last_event_id=00000000.5`,
        ctx.t.authHeaders,
      );
      const gap = await unknown.next((e) => e.event === 'gap');
      assert.equal(gap.json.reason, 'the server restarted since');
      unknown.close();
    });

    it('replays every point missed within the replay window, in order, then goes on live', async () => {
      // Far more than one client buffer (STREAM_BUFFER_BYTES, 128 KiB: about 800 events) holds.
      const n = 6_000;
      const url = `${base}/api/v1/metrics/stream?metrics=replayed`;
      const t = Date.now() - 3_600_000;
      const points = (from: number, count: number) =>
        Array.from({ length: count }, (_, i) => ({ name: 'replayed', value: from + i, timestamp: t + from + i }));
      const first = await sseClient(url, ctx.t.authHeaders);
      await send('r', points(-1, 1), t);
      const lastId = (await first.next((e) => e.json?.value === -1)).id!;
      first.close();
      await first.ended;
      await send('r', points(0, n), t);
      const resumed = await sseClient(url, { ...ctx.t.authHeaders, 'last-event-id': lastId });
      // Committed while the replay may still be going: after it, each once.
      await send('r', points(n, 100), t);
      await resumed.next((e) => e.json?.value === n + 99, 0, 20_000);
      assert.deepEqual(
        resumed.events.filter((e) => e.event !== undefined).map((e) => e.event),
        [],
        'no gap or skipped event',
      );
      const values = resumed.events.map((e) => e.json.value);
      assert.equal(values.length, n + 100);
      assert.ok(
        values.every((v, i) => v === i),
        'every point once, in commit order',
      );
      const seqs = resumed.events.map((e) => Number(e.id!.split('.')[1]));
      assert.ok(seqs.every((q, i) => i === 0 || q > seqs[i - 1]));
      resumed.close();
      await resumed.ended;
    });

    it('sends the latest value per series every interval, starting from what is stored', async () => {
      const t = Date.now() - 60_000;
      await send('gpu0', [{ name: 'gpu_util', value: 10 }], t);
      await send('gpu0', [{ name: 'gpu_util', value: 20 }], t + 1000);
      await send('gpu1', [{ name: 'gpu_util', value: 70 }], t);
      const s = await sseClient(`${base}/api/v1/metrics/stream?metrics=gpu_util&interval=1`, ctx.t.authHeaders);
      const first = await s.next((e) => e.json?.source === 'gpu1');
      assert.equal(first.json.aggregation, 'last');
      const seeded = Object.fromEntries(s.events.map((e) => [e.json.source, e.json.value]));
      assert.deepEqual(seeded, { gpu0: 20, gpu1: 70 });
      await send('gpu0', [{ name: 'gpu_util', value: 33 }]);
      const later = await s.next((e) => e.json?.source === 'gpu0' && e.json.value === 33, 0, 5_000);
      assert.match(later.id!, /^\d+$/);
      assert.equal(Number(later.id) % 1000, 0);
      s.close();
    });

    it('sends bucket aggregates per interval, resuming missed buckets from storage, then live', async () => {
      // Buckets 2 s wide, aligned to the epoch: two closed buckets in the past, then live ones.
      const I = 2_000;
      const now = Date.now();
      const b0 = Math.floor(now / I) * I - 3 * I;
      await send('host', [{ name: 'load', value: 1 }], b0 + 200);
      await send('host', [{ name: 'load', value: 3 }], b0 + 700);
      await send('host', [{ name: 'load', value: 10 }], b0 + I + 500);
      const s = await sseClient(`${base}/api/v1/metrics/stream?metrics=load&interval=2s&aggregation=avg`, {
        ...ctx.t.authHeaders,
        'last-event-id': String(b0),
      });
      const e1 = await s.next((e) => e.json?.timestamp === iso(b0), 0, 6_000);
      assert.deepEqual(
        { v: e1.json.value, c: e1.json.count, id: e1.id, agg: e1.json.aggregation, interval: e1.json.interval },
        { v: 2, c: 2, id: String(b0 + I), agg: 'avg', interval: 2 },
      );
      const e2 = await s.next((e) => e.json?.timestamp === iso(b0 + I), 0, 1_000);
      assert.equal(e2.json.value, 10);
      // A bucket that opens after the stream started is aggregated in memory from the commits.
      const t = Math.floor(Date.now() / I) * I + I;
      await waitFor(() => Date.now() >= t, 3_000);
      await send('host', [{ name: 'load', value: 4 }], t + 100);
      await send('host', [{ name: 'load', value: 8 }], t + 200);
      const live = await s.next((e) => e.json?.timestamp === iso(t), 0, 6_000);
      assert.deepEqual({ v: live.json.value, c: live.json.count }, { v: 6, c: 2 });
      s.close();
    });

    it('resumes the bucket open at connect time from storage also when connecting in its first second', async () => {
      const I = 2_000;
      // Connect 50-400 ms into a bucket, with a point of that bucket committed just before.
      await waitFor(() => Date.now() % I >= 50 && Date.now() % I < 400, 3_000);
      const open = Math.floor(Date.now() / I) * I;
      await send('host', [{ name: 'early', value: 5 }], open + 10);
      const s = await sseClient(`${base}/api/v1/metrics/stream?metrics=early&interval=2s&aggregation=sum`, {
        ...ctx.t.authHeaders,
        'last-event-id': String(open - 2 * I),
      });
      await send('host', [{ name: 'early', value: 7 }], open + 20);
      const e = await s.next((ev) => ev.json?.timestamp === iso(open), 0, 8_000);
      assert.deepEqual(
        { v: e.json.value, c: e.json.count },
        { v: 12, c: 2 },
        'both points, the one before connect too',
      );
      s.close();
    });

    it('frees the slot of an interval stream whose client hung up before it started', async () => {
      const hub = ctx.t.app.get(StreamHub);
      const repo = ctx.t.app.get(StreamingRepository);
      const count = repo.countSeries.bind(repo);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      repo.countSeries = async (...a: Parameters<typeof repo.countSeries>) => (await held, count(...a));
      try {
        const req = http.get(`${base}/api/v1/metrics/stream?metrics=load&interval=5s`, { headers: ctx.t.authHeaders });
        req.on('error', () => undefined);
        await new Promise((r) => setTimeout(r, 100)); // the request waits on the held check
        req.destroy();
        await new Promise((r) => setTimeout(r, 100));
        release();
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(hub.connectionCount, 0, 'nobody is streaming');
      } finally {
        repo.countSeries = count;
      }
    });

    it('refuses bad stream parameters before the stream starts', async () => {
      for (const [qs, param] of [
        ['interval=0', 'interval'],
        ['interval=1.5', 'interval'],
        ['interval=2h', 'interval'],
        ['aggregation=avg', 'aggregation'],
        ['interval=5&aggregation=median', 'aggregation'],
        ['tags=nocolon', 'tags'],
      ]) {
        const r = await ctx.t.get(`/api/v1/metrics/stream?${qs}`);
        assert.equal(r.status, 400, `${qs}: ${r.body}`);
        assert.equal(r.json.error.details.field ?? r.json.error.details.parameter, param, r.body);
      }
    });
  },
  { STREAM_MAX_CONNECTIONS: '4', STREAM_MAX_SUBSCRIPTIONS: '3', STREAM_HEARTBEAT_SECONDS: '1' },
);
