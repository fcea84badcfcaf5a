import assert from 'node:assert/strict';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { StreamEvent, TimescopeApiError, TimescopeClient } from '../../clients/typescript/src/index.js';

/** The stream iterator against a local server that plays the service's part, connection by connection. */
describe('client stream reconnection', () => {
  let server: Server;
  let base = '';
  let handler: (req: IncomingMessage, res: ServerResponse, n: number) => void = () => undefined;
  const seen: Array<{ lastEventId: string | undefined; authorization: string | undefined; at: number }> = [];

  before(async () => {
    server = createServer((req, res) => {
      seen.push({
        lastEventId: req.headers['last-event-id'] as string | undefined,
        authorization: req.headers.authorization,
        at: Date.now(),
      });
      handler(req, res, seen.length);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const open = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream' });
  const point = (id: string, value: number) =>
    `id: ${id}\ndata: {"metric":"m","value":${value},"timestamp":"2026-01-01T00:00:00.000Z","source":"s","unit":null,"tags":{}}\n\n`;
  const values = (events: StreamEvent[]) => events.map((e) => (e.type === 'point' ? e.data.value : e.type));

  async function take(it: AsyncIterator<StreamEvent>, n: number): Promise<StreamEvent[]> {
    const out: StreamEvent[] = [];
    while (out.length < n) {
      const r = await it.next();
      if (r.done) break;
      out.push(r.value);
    }
    return out;
  }

  it('reconnects after the server ends the stream, after the server-given retry, from the last complete event', async () => {
    seen.length = 0;
    handler = (_req, res, n) => {
      if (n === 1) {
        open(res);
        // retry: 150 ms, two points, then half an event, and the server goes away.
        res.write('retry: 150\n: hello\n\n' + point('b.1', 1) + point('b.2', 2) + 'id: b.3\ndata: {"metric":');
        setTimeout(() => res.destroy(), 50);
      } else if (n === 2) {
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' }); // busy: come back in 1 s
        res.end('{"error":{"code":"SERVICE_UNAVAILABLE","message":"busy","retry_after":1}}');
      } else {
        open(res);
        res.write(
          point('b.3', 3) + 'event: gap\ndata: {"reason":"older than the replay window"}\n\n' + point('b.4', 4),
        );
      }
    };
    const client = new TimescopeClient({ baseUrl: base, apiKey: 'tsk_k', retry: { baseDelayMs: 10 } });
    const stream = client.stream({ metrics: ['m'], tags: { host: ['a', 'b'] } });
    const events = await take(stream, 5);
    await stream.return();
    assert.deepEqual(values(events), [1, 2, 3, 'gap', 4]);
    assert.deepEqual(
      seen.map((s) => s.lastEventId),
      [undefined, 'b.2', 'b.2'], // b.3 was cut short: not skipped
    );
    assert.ok(seen.every((s) => s.authorization === 'Bearer tsk_k'));
    const wait1 = seen[1].at - seen[0].at;
    const wait2 = seen[2].at - seen[1].at;
    // Under the client's own default of 3 s: the server's 150 ms was taken.
    assert.ok(wait1 >= 150 && wait1 < 3_000, `reconnected ${wait1} ms after the drop`);
    assert.ok(wait2 >= 1_000 && wait2 < 5_000, `came back ${wait2} ms after a 503 with Retry-After: 1`);
    assert.equal(stream.connections, 2);
    assert.equal(stream.lastEventId, 'b.4');
  });

  it('reopens a stream that went silent past its idle timeout', async () => {
    seen.length = 0;
    handler = (_req, res, n) => {
      open(res);
      res.write(point(`c.${n}`, n)); // then nothing, not even a keep-alive
    };
    const client = new TimescopeClient({ baseUrl: base, streamIdleTimeoutMs: 200 });
    const stream = client.stream({ reconnectDelayMs: 10 });
    const events = await take(stream, 3);
    await stream.close();
    assert.deepEqual(values(events), [1, 2, 3]);
    assert.deepEqual(
      seen.map((s) => s.lastEventId),
      [undefined, 'c.1', 'c.2'],
    );
  });

  it('says the id of the last event handed over, not of the last one read, so a new stream resumes there', async () => {
    seen.length = 0;
    handler = (_req, res) => {
      open(res);
      res.write(point('d.1', 1) + point('d.2', 2) + point('d.3', 3)); // one chunk, three events
    };
    const client = new TimescopeClient({ baseUrl: base });
    const stream = client.stream();
    assert.deepEqual(values(await take(stream, 1)), [1]);
    assert.equal(stream.lastEventId, 'd.1'); // d.2 and d.3 were read, not handed over
    assert.deepEqual(values(await take(stream, 2)), [2, 3]);
    assert.equal(stream.lastEventId, 'd.3');
    await stream.close();
  });

  it('does not count the time a slow caller holds an event against the connection', async () => {
    seen.length = 0;
    handler = (_req, res, n) => {
      open(res);
      let i = 0;
      const t = setInterval(() => (i < 6 ? res.write(point(`e.${n}.${++i}`, i)) : clearInterval(t)), 50);
      res.on('close', () => clearInterval(t));
    };
    const client = new TimescopeClient({ baseUrl: base, streamIdleTimeoutMs: 200 });
    const stream = client.stream({ reconnectDelayMs: 10 });
    const got: StreamEvent[] = [];
    for await (const e of stream) {
      got.push(e);
      if (got.length === 6) break;
      await new Promise((r) => setTimeout(r, 300)); // longer than the idle timeout, while bytes keep coming
    }
    assert.deepEqual(values(got), [1, 2, 3, 4, 5, 6]);
    assert.equal(stream.connections, 1, 'reopened a connection that was never silent');
  });

  it('throws a refusal that retrying cannot fix, and gives up after maxReconnectAttempts', async () => {
    handler = (_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"UNAUTHORIZED","message":"no key"}}');
    };
    const client = new TimescopeClient({ baseUrl: base });
    const err = await client
      .stream()
      .next()
      .catch((e: unknown) => e);
    assert.ok(err instanceof TimescopeApiError);
    assert.equal(err.code, 'UNAUTHORIZED');

    seen.length = 0;
    handler = (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"SERVICE_UNAVAILABLE","message":"busy"}}');
    };
    const busy = new TimescopeClient({ baseUrl: base, retry: { baseDelayMs: 5 } });
    const e503 = await busy
      .stream({ maxReconnectAttempts: 3 })
      .next()
      .catch((e: unknown) => e);
    assert.ok(e503 instanceof TimescopeApiError);
    assert.equal(e503.status, 503);
    assert.equal(seen.length, 3);
  });
});
