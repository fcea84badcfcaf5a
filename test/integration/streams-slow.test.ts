import assert from 'node:assert/strict';
import http from 'node:http';
import { before, it } from 'node:test';
import { StreamHub } from '../../src/streaming/stream-hub.js';
import { wsClient } from '../support/stream-clients.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

describeEachFlavour(
  'streams: slow clients',
  (ctx) => {
    let port: number;
    before(async () => {
      port = await ctx.t.listen();
    });

    it('cuts off a client that stops reading, while ingest and the other clients go on', async (t) => {
      // Streaming does not depend on the flavour; this needs volume, which PGlite ingests slowly.
      if (ctx.flavour === 'timescaledb') return t.skip('volume test: plain PostgreSQL only');
      const fast = await wsClient(port, undefined, ctx.t.authHeaders);
      const slow = await wsClient(port, undefined, ctx.t.authHeaders);
      for (const c of [fast, slow]) c.send({ action: 'subscribe', metrics: ['flood'] });
      await waitFor(() => fast.messages.length === 1 && slow.messages.length === 1);
      // The slow client stops reading: the kernel buffers fill, then the server-side queue.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const hub = ctx.t.app.get(StreamHub);
      const requests = 400,
        per = 200;
      const t0 = Date.now() - 600_000;
      let n = 0;
      for (let r = 0; r < requests; r++) {
        const metrics = Array.from({ length: per }, (_, i) => ({
          name: 'flood',
          value: r * per + i,
          tags: { k: `s${i}` },
        }));
        const res = await ctx.t.post('/api/v1/metrics', {
          source: 'load',
          timestamp: new Date(t0 + r * 1000).toISOString(),
          metrics,
        });
        assert.equal(res.status, 200, res.body);
        n += per;
        if (r % 50 === 0)
          await waitFor(() => fast.messages.length - 1 >= n - per, 10_000, 'the fast client to keep up');
      }
      await waitFor(() => hub.stats.cutOff === 1, 5_000, 'the slow client to be cut off');
      await waitFor(() => fast.messages.length - 1 === n, 10_000, 'every point at the fast client');
      assert.equal(fast.messages.filter((m) => m.type === 'updates_skipped').length, 0);
      // Reading again, the slow client gets what was queued before the cut-off, then the close frame.
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      const closed = await slow.closed;
      assert.equal(closed.code, 1013);
      assert.match(closed.reason, /too slow/);
      const got = slow.messages.filter((m) => m.type === 'metric_update').length;
      assert.ok(got > 0 && got < n, `the slow client got ${got} of ${n}`);
      await waitFor(() => hub.connectionCount === 1);
      await fast.close();
    });

    it('cuts off an SSE client whose queue went past the limit on the last point of a quiet stream', async (t) => {
      if (ctx.flavour === 'timescaledb') return t.skip('volume test: plain PostgreSQL only');
      const hub = ctx.t.app.get(StreamHub);
      const cutBefore = hub.stats.cutOff;
      // A real SSE client that reads the opening comment, then stops reading.
      const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
        http
          .get(
            `http://127.0.0.1:${port}/api/v1/metrics/stream?metrics=trickle`,
            { headers: ctx.t.authHeaders },
            resolve,
          )
          .on('error', reject),
      );
      assert.equal(res.statusCode, 200);
      await new Promise((resolve) => res.once('data', resolve));
      res.pause();
      const t0 = Date.now() - 600_000;
      let r = 0;
      const send = async (n: number) => {
        const routed = hub.stats.delivered;
        const metrics = Array.from({ length: n }, (_, i) => ({ name: 'trickle', value: i, tags: { k: `s${i}` } }));
        const res2 = await ctx.t.post('/api/v1/metrics', {
          source: 'load',
          timestamp: new Date(t0 + r++ * 1000).toISOString(),
          metrics,
        });
        assert.equal(res2.status, 200, res2.body);
        await waitFor(() => hub.stats.delivered >= routed + n, 5_000, 'the fan-out');
      };
      const queued = () => hub.summary().queued_bytes;
      // Bursts well under the limit until the kernel buffers are full and the server queues...
      while (queued() === 0 && r < 5_000) await send(200);
      assert.ok(queued() > 0 && queued() <= 65_536, `queued ${queued()}`);
      // ...then one point at a time until the last one took the queue past the limit: nothing skipped.
      while (queued() <= 65_536 && r < 10_000) await send(1);
      assert.equal(hub.summary().updates_skipped_open_connections, 0);
      // No further point comes: the periodic check alone must cut it off.
      await waitFor(() => hub.stats.cutOff === cutBefore + 1, 5_000, 'the quiet slow client to be cut off');
      // Cut off means gone: the connection is dropped with what was queued for it, not left to a
      // client that does not read (its slot and that memory would stay until it leaves).
      await waitFor(() => hub.connectionCount === 0, 3_000, 'the slot freed while the client still does not read');
      res.destroy();
    });
  },
  { STREAM_BUFFER_BYTES: '65536', STREAM_SLOW_CLIENT_SECONDS: '1', STREAM_HEARTBEAT_SECONDS: '30' },
);

describeEachFlavour(
  'streams: clients that catch up',
  (ctx) => {
    let port: number;
    before(async () => {
      port = await ctx.t.listen();
    });

    it('tells an SSE client how many points it missed once it catches up, with no further point to carry it', async () => {
      const hub = ctx.t.app.get(StreamHub);
      const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
        http
          .get(`http://127.0.0.1:${port}/api/v1/metrics/stream?metrics=quiet`, { headers: ctx.t.authHeaders }, resolve)
          .on('error', reject),
      );
      assert.equal(res.statusCode, 200);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      await waitFor(() => text.length > 0);
      res.pause();
      // Not reading: the kernel buffers fill, then the server's queue, then points are skipped.
      const t0 = Date.now() - 3_600_000,
        per = 2_000;
      let sent = 0;
      while (hub.summary().updates_skipped_open_connections === 0 && sent < 200_000) {
        const metrics = Array.from({ length: per }, (_, i) => ({ name: 'quiet', value: i, timestamp: t0 + sent + i }));
        const r = await ctx.t.post('/api/v1/metrics', { source: 'load', metrics });
        assert.equal(r.status, 200, r.body);
        sent += per;
      }
      assert.ok(hub.summary().updates_skipped_open_connections > 0, 'points were skipped');
      // Reading again, with nothing more committed: the notice must still come.
      res.resume();
      const events = () => text.split('\n\n').filter((b) => b.includes('data: '));
      await waitFor(() => /^event: skipped$/m.test(text), 5_000, 'event: skipped');
      const skipped = events().find((b) => b.startsWith('event: skipped'))!;
      const count = JSON.parse(skipped.slice(skipped.indexOf('data: ') + 6)).count;
      const points = events().filter((b) => !b.startsWith('event:')).length;
      assert.equal(points + count, sent, `${points} points and ${count} skipped of ${sent}`);
      res.destroy();
      await waitFor(() => hub.connectionCount === 0);
    });
  },
  { STREAM_BUFFER_BYTES: '65536', STREAM_SLOW_CLIENT_SECONDS: '30', STREAM_HEARTBEAT_SECONDS: '30' },
  { flavours: ['postgresql'] },
);
