import assert from 'node:assert/strict';
import { get, IncomingMessage } from 'node:http';
import { before, it } from 'node:test';
import { brotliDecompressSync, constants, gunzipSync, inflateSync } from 'node:zlib';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Math.floor((Date.now() - 4 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const POINTS = 20_000;

/** A response over real HTTP, its chunks as they arrived. */
function httpGet(
  base: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ res: IncomingMessage; chunks: Buffer[]; done: Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    get(`${base}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = new Promise<Buffer>((ok, fail) => {
        res.on('end', () => ok(Buffer.concat(chunks)));
        res.on('error', fail);
      });
      resolve({ res, chunks, done });
    }).on('error', reject);
  });
}

/**
 * Compression of answers does not depend on the storage flavour: one flavour is enough here.
 */
describeEachFlavour(
  'compressed answers',
  (ctx) => {
    let base: string;
    const inject = async (url: string, headers: Record<string, string>) => {
      const res = await ctx.t.app
        .getHttpAdapter()
        .getInstance()
        .inject({ method: 'GET', url, headers: { ...ctx.t.authHeaders, ...headers } });
      return { status: res.statusCode, headers: res.headers, body: res.rawPayload };
    };
    const bigQuery = `/api/v1/metrics/query?metric=big&from=${iso(T0)}&to=${iso(T0 + 4 * HOUR)}&granularity=1m`;

    before(async () => {
      for (let i = 0; i < POINTS; i += 5_000) {
        const metrics = Array.from({ length: 5_000 }, (_, j) => ({
          name: 'big',
          value: ((i + j) * 7919) % 1000,
          timestamp: T0 + (i + j) * 700,
        }));
        const r = await ctx.t.post('/api/v1/metrics', { source: 'zip', metrics });
        assert.equal(r.status, 200, r.body);
      }
      base = `http://127.0.0.1:${await ctx.t.listen()}`;
    });

    it('compresses a large query answer with gzip, br or deflate as asked, with Vary, and it decodes to the same answer', async () => {
      const plain = await inject(bigQuery, {});
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['content-encoding'], undefined);
      const answer = JSON.parse(plain.body.toString());
      assert.equal(answer.data_points.length, Math.ceil((POINTS * 700) / MIN)); // one per minute with points
      const strip = (j: { query_time_ms?: number }) => ({ ...j, query_time_ms: 0 });
      for (const [accept, encoding, decode] of [
        ['gzip', 'gzip', gunzipSync],
        ['br', 'br', brotliDecompressSync],
        ['deflate', 'deflate', inflateSync],
        ['gzip;q=0.5, br', 'br', brotliDecompressSync],
        ['deflate, gzip;q=0.9', 'deflate', inflateSync],
      ] as const) {
        const r = await inject(bigQuery, { 'accept-encoding': accept });
        assert.equal(r.status, 200, accept);
        assert.equal(r.headers['content-encoding'], encoding, accept);
        assert.match(String(r.headers.vary), /accept-encoding/i, accept);
        assert.ok(r.body.length < plain.body.length / 3, `${accept}: ${r.body.length} of ${plain.body.length} bytes`);
        assert.deepEqual(strip(JSON.parse(decode(r.body).toString())), strip(answer), accept);
      }
      const identity = await inject(bigQuery, { 'accept-encoding': 'identity' });
      assert.equal(identity.headers['content-encoding'], undefined);
      assert.equal(JSON.parse(identity.body.toString()).data_points.length, answer.data_points.length);
    });

    it('leaves answers under 1 KB uncompressed', async () => {
      const r = await inject(`/api/v1/metrics/query?metric=big&from=${iso(T0)}&to=${iso(T0 + HOUR)}&granularity=1h`, {
        'accept-encoding': 'gzip, br',
      });
      assert.equal(r.status, 200);
      assert.ok(r.body.length < 1024, `${r.body.length} bytes`);
      assert.equal(r.headers['content-encoding'], undefined);
      assert.equal(JSON.parse(r.body.toString()).data_points.length, 1);
      const small = await inject('/api/v1/no-such-route', { 'accept-encoding': 'gzip' }); // the 404 envelope
      assert.equal(small.headers['content-encoding'], undefined);
    });

    it('streams a CSV export compressed chunk by chunk (each chunk decodes on its own), and never compresses Parquet', async () => {
      const path = `/api/v1/metrics/export?format=csv&metric=big&from=${iso(T0)}&to=${iso(T0 + 4 * HOUR)}`;
      const plain = await inject(path, {});
      assert.equal(plain.status, 200);
      const csv = plain.body.toString();
      assert.equal(csv.trim().split('\n').length, POINTS + 1);
      const { res, chunks, done } = await httpGet(base, path, { ...ctx.t.authHeaders, 'accept-encoding': 'gzip' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-encoding'], 'gzip');
      assert.equal(res.headers['content-length'], undefined);
      assert.match(String(res.headers.vary), /accept-encoding/i);
      const body = await done;
      assert.equal(gunzipSync(body).toString(), csv);
      // Streamed, not buffered: several chunks, and the first one alone already holds whole CSV lines.
      assert.ok(chunks.length > 1, `${chunks.length} chunks`);
      const first = gunzipSync(chunks[0], { finishFlush: constants.Z_SYNC_FLUSH }).toString();
      assert.ok(first.length > 0 && csv.startsWith(first), 'the first chunk decodes to the start of the CSV');

      const parquet = await inject(
        `/api/v1/metrics/export?format=parquet&metric=big&from=${iso(T0)}&to=${iso(T0 + HOUR)}`,
        { 'accept-encoding': 'gzip, br, deflate' },
      );
      assert.equal(parquet.status, 200);
      assert.equal(parquet.headers['content-encoding'], undefined);
      assert.equal(parquet.body.subarray(0, 4).toString(), 'PAR1');
    });

    it('keeps SSE uncompressed and streaming when the client accepts gzip', async () => {
      const { res, chunks } = await httpGet(base, '/api/v1/metrics/stream?metrics=live&sources=zip', {
        ...ctx.t.authHeaders,
        accept: 'text/event-stream',
        'accept-encoding': 'gzip, deflate, br',
      });
      try {
        assert.equal(res.statusCode, 200);
        assert.match(String(res.headers['content-type']), /^text\/event-stream/);
        assert.equal(res.headers['content-encoding'], undefined);
        const r = await ctx.t.post('/api/v1/metrics', {
          source: 'zip',
          metrics: [{ name: 'live', value: 42.5, timestamp: iso(Date.now()) }],
        });
        assert.equal(r.status, 200, r.body);
        await waitFor(() => Buffer.concat(chunks).toString().includes('"value":42.5'), 5_000, 'the SSE event');
      } finally {
        res.destroy();
      }
    });
  },
  {},
  { flavours: ['postgresql'] },
);
