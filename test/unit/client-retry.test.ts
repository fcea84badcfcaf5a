import assert from 'node:assert/strict';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  backoffDelay,
  DEFAULT_RETRY,
  parseRetryAfter,
  reconnectDelay,
  retryDelay,
  TimescopeApiError,
  TimescopeClient,
  TimescopeConnectionError,
  TimescopeWriteError,
} from '../../clients/typescript/src/index.js';

describe('client backoff', () => {
  const policy = { ...DEFAULT_RETRY, baseDelayMs: 100, maxDelayMs: 1_000 };

  it('draws full jitter under a cap that doubles per retry up to maxDelayMs', () => {
    const top = () => 0.999999;
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((r) => backoffDelay(r, policy, top)),
      [99, 199, 399, 799, 999, 999],
    );
    assert.equal(
      backoffDelay(3, policy, () => 0),
      0,
    );
    assert.equal(
      backoffDelay(3, policy, () => 0.5),
      200,
    );
    // Spread over the whole range, not bunched: 2,000 draws of retry 4 (cap 800) cover every tenth.
    const deciles = new Set<number>();
    for (let i = 0; i < 2_000; i++) deciles.add(Math.floor(backoffDelay(4, policy) / 80));
    assert.deepEqual(
      [...deciles].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });

  it('reads Retry-After as seconds or an HTTP date, and never retries sooner than asked', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('5', now), 5_000);
    assert.equal(parseRetryAfter(' 1.5 ', now), 1_500);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
    for (const r of [0, 0.5, 0.999]) {
      const d = retryDelay(1, 3_000, policy, () => r)!;
      assert.ok(d >= 3_000 && d < 3_100, String(d)); // what was asked, plus at most one base delay of spread
    }
    assert.equal(retryDelay(1, 120_000, policy), undefined); // past maxRetryAfterMs (60 s): give up, do not cut it short
    assert.equal(
      reconnectDelay(1, 3_000, 20_000, () => 0.9),
      3_000,
    );
    assert.equal(
      reconnectDelay(3, 3_000, 20_000, () => 0.5),
      3_000 + 6_000,
    );
    assert.equal(
      reconnectDelay(9, 3_000, 20_000, () => 0.5),
      3_000 + 10_000,
    );
  });
});

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

/** A local HTTP server whose handler the test sets; it records every request. */
class Stub {
  server!: Server;
  url = '';
  handler: Handler = (_req, _body, res) => res.end('{}');
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string; at: number }> = [];

  async start() {
    this.server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        this.requests.push({ method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() });
        this.handler(req, body, res);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(handler: Handler) {
    this.handler = handler;
    this.requests = [];
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const envelope = (res: ServerResponse, status: number, code: string, extra: Record<string, unknown> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message: `${code} here`, timestamp: new Date().toISOString(), ...extra } }));
};

describe('client retries against a local server', () => {
  const stub = new Stub();
  const retries: number[] = [];
  let client: TimescopeClient;

  before(async () => {
    await stub.start();
    client = new TimescopeClient({
      baseUrl: `${stub.url}/api/v1/`,
      apiKey: 'tsk_test',
      retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 100 },
      timeoutMs: 2_000,
      onRetry: (e) => retries.push(e.attempt),
    });
  });
  after(() => stub.stop());

  it('retries 503 and 429 with the key on every attempt, then returns the answer', async () => {
    let n = 0;
    retries.length = 0;
    stub.reset((_req, _body, res) => {
      n++;
      if (n === 1) envelope(res, 503, 'SERVICE_UNAVAILABLE', { retry_after: 0 });
      else if (n === 2) envelope(res, 429, 'RATE_LIMIT_EXCEEDED', { limit: 10, window: '1m' });
      else res.end(JSON.stringify({ metrics: [], total: 0 }));
    });
    assert.deepEqual(await client.metricNames({ search: 'cpu' }), { metrics: [], total: 0 });
    assert.equal(stub.requests.length, 3);
    assert.deepEqual(retries, [1, 2]);
    for (const r of stub.requests) {
      assert.equal(r.url, '/api/v1/metrics/names?search=cpu'); // the /api/v1 of baseUrl is not doubled
      assert.equal(r.headers.authorization, 'Bearer tsk_test');
    }
  });

  it('waits as long as Retry-After asks', async () => {
    let n = 0;
    stub.reset((_req, _body, res) => {
      if (++n === 1) {
        res.setHeader('retry-after', '1');
        envelope(res, 429, 'RATE_LIMIT_EXCEEDED', { retry_after: 1 });
      } else res.end('{"sources":[],"total":0}');
    });
    await client.sources();
    const gap = stub.requests[1].at - stub.requests[0].at;
    assert.ok(gap >= 990 && gap < 5_000, `second attempt ${gap} ms after the first`);
  });

  it('throws a typed error at once on other 4xx, carrying the envelope', async () => {
    stub.reset((_req, _body, res) => envelope(res, 400, 'INVALID_QUERY', { details: { parameter: 'aggregation' } }));
    const err = await client.query({ metric: 'cpu', aggregation: 'avg' }).catch((e: unknown) => e);
    assert.ok(err instanceof TimescopeApiError);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'INVALID_QUERY');
    assert.equal(err.body.message, 'INVALID_QUERY here');
    assert.deepEqual(err.details, { parameter: 'aggregation' });
    assert.equal(stub.requests.length, 1);
    stub.reset((_req, _body, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>not here</h1>'); // not an envelope: a proxy's page
    });
    const e404 = await client.tags({ metric: 'x' }).catch((e: unknown) => e);
    assert.ok(e404 instanceof TimescopeApiError);
    assert.equal(e404.code, 'HTTP_404');
    assert.equal(stub.requests.length, 1);
  });

  it('gives up after maxAttempts with the last error', async () => {
    stub.reset((_req, _body, res) => envelope(res, 503, 'SERVICE_UNAVAILABLE'));
    const err = await client.sources().catch((e: unknown) => e);
    assert.ok(err instanceof TimescopeApiError);
    assert.equal(err.status, 503);
    assert.equal(stub.requests.length, 4);
  });

  it('retries a reset connection and an attempt that times out', async () => {
    let n = 0;
    stub.reset((req, _body, res) => {
      n++;
      if (n === 1) req.socket.destroy();
      else if (n === 2)
        return; // never answers: the attempt's timeout
      else res.end('{"sources":[],"total":0}');
    });
    const quick = new TimescopeClient({ baseUrl: stub.url, retry: { baseDelayMs: 10 }, timeoutMs: 300 });
    assert.deepEqual(await quick.sources(), { sources: [], total: 0 });
    assert.equal(stub.requests.length, 3);
    const refused = new TimescopeClient({ baseUrl: 'http://127.0.0.1:9', retry: { maxAttempts: 2, baseDelayMs: 5 } });
    const err = await refused.sources().catch((e: unknown) => e);
    assert.ok(err instanceof TimescopeConnectionError, String(err));
  });

  it('stops waiting when the caller aborts', async () => {
    stub.reset((_req, _body, res) => {
      res.setHeader('retry-after', '30');
      envelope(res, 503, 'SERVICE_UNAVAILABLE');
    });
    const patient = new TimescopeClient({ baseUrl: stub.url, retry: { maxRetryAfterMs: 60_000 } });
    const ctl = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ctl.abort(new Error('enough')), 100);
    await assert.rejects(patient.sources({}, { signal: ctl.signal }), /enough/);
    assert.ok(Date.now() - t0 < 5_000); // not the 30 s asked for
  });

  it('writes every point exactly once when the first attempt of each batch gets 503', async () => {
    const firstSeen = new Set<string>();
    const accepted: string[] = [];
    stub.reset((req, body, res) => {
      if (!firstSeen.has(body)) {
        firstSeen.add(body);
        return envelope(res, 503, 'SERVICE_UNAVAILABLE', { retry_after: 0 });
      }
      accepted.push(body);
      const n = JSON.parse(body).batches.reduce((s: number, b: any) => s + b.metrics.length, 0);
      res.end(JSON.stringify({ status: 'success', metrics_accepted: n, timestamp: '', batch_id: 'b' }));
    });
    const w = client.writer({ source: 'unit', batchSize: 1_000, flushIntervalMs: 10 });
    for (let i = 0; i < 4_500; i++) await w.write({ name: 'm', value: i, tags: { k: String(i % 3) } });
    await w.close();
    assert.equal(stub.requests.length, 10); // 5 batches, each sent twice
    assert.equal(accepted.length, 5);
    // The retry is the same body, byte for byte: same points, same timestamps.
    assert.deepEqual([...firstSeen], accepted);
    const values = accepted.flatMap((b) =>
      JSON.parse(b).batches.flatMap((x: any) => x.metrics.map((m: any) => m.value)),
    );
    assert.deepEqual(
      values,
      Array.from({ length: 4_500 }, (_, i) => i),
    );
    assert.deepEqual(w.stats, { buffered: 0, inFlight: 0, written: 4_500, failed: 0, batches: 5 });
  });

  it('reports a batch refused for good from flush, with its points, and goes on', async () => {
    stub.reset((_req, body, res) => {
      if (body.includes('"bad"')) return envelope(res, 422, 'UNPROCESSABLE_ENTITY');
      res.end('{"status":"success","metrics_accepted":1,"timestamp":"","batch_id":"b"}');
    });
    const seen: number[] = [];
    const w = client.writer({ source: 'unit', onError: (_e, points) => seen.push(points.length) });
    await w.write([
      { name: 'bad', value: 1 },
      { name: 'bad', value: 2 },
    ]);
    const err = await w.flush().catch((e: unknown) => e);
    assert.ok(err instanceof TimescopeWriteError);
    assert.equal(err.points.length, 2);
    assert.equal((err.failures[0].error as TimescopeApiError).code, 'UNPROCESSABLE_ENTITY');
    assert.deepEqual(seen, [2]);
    await w.write({ name: 'good', value: 3 });
    await w.close(); // the failure was reported once; the next batch goes through
    assert.equal(w.stats.written, 1);
  });
});
