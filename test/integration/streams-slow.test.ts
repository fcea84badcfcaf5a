import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
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
      await ctx.t.app.listen({ port: 0, host: '127.0.0.1' });
      port = (ctx.t.app.getHttpServer().address() as AddressInfo).port;
    });

    it('cuts off a client that stops reading, while ingest and the other clients go on', async (t) => {
      // Streaming does not depend on the flavour; this needs volume, which PGlite ingests slowly.
      if (ctx.flavour === 'timescaledb') return t.skip('volume test: plain PostgreSQL only');
      const fast = await wsClient(port);
      const slow = await wsClient(port);
      for (const c of [fast, slow]) c.send({ action: 'subscribe', metrics: ['flood'] });
      await waitFor(() => fast.messages.length === 1 && slow.messages.length === 1);
      // The slow client stops reading: the kernel buffers fill, then the server-side queue.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const hub = ctx.t.app.get(StreamHub);
      const requests = 400, per = 200;
      const t0 = Date.now() - 600_000;
      let n = 0;
      for (let r = 0; r < requests; r++) {
        const metrics = Array.from({ length: per }, (_, i) => ({ name: 'flood', value: r * per + i, tags: { k: `s${i}` } }));
        const res = await ctx.t.post('/api/v1/metrics', { source: 'load', timestamp: new Date(t0 + r * 1000).toISOString(), metrics });
        assert.equal(res.status, 200, res.body);
        n += per;
        if (r % 50 === 0) await waitFor(() => fast.messages.length - 1 >= n - per, 10_000, 'the fast client to keep up');
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
  },
  { STREAM_BUFFER_BYTES: '65536', STREAM_SLOW_CLIENT_SECONDS: '1', STREAM_HEARTBEAT_SECONDS: '30' },
);
