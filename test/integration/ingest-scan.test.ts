import assert from 'node:assert/strict';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { IngestionService } from '../../src/ingestion/ingestion.service.js';
import { describeEachFlavour } from '../support/suite.js';

const iso = (ms: number) => new Date(ms).toISOString();
const T0 = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;

/**
 * The JSON scanner on the real routes: common bodies go through it (and are stored as the slow
 * path would store them), the others through JSON.parse + decode.ts with the same answers as before.
 */
describeEachFlavour(
  'ingest: the JSON scanner on the routes',
  (ctx) => {
    const counts = () => ({ ...ctx.t.app.get(IngestionService).jsonBodies });
    const rows = async (source: string) =>
      (
        await ctx.t.sql.query(
          `SELECT metric, tags, unit, value, time FROM metrics WHERE source = $1 ORDER BY metric, time, tags::text`,
          [source],
        )
      ).rows.map((r) => [r.metric, r.tags, r.unit, r.value, r.time.getTime()]);

    it('reads a 5,000-point body of the bench shape, and stores what the slow path stores', async () => {
      const metrics = Array.from({ length: 5000 }, (_, i) => ({
        name: `metric_${i % 10}`,
        value: Math.round(i * 7.77 * 100) / 100,
        unit: 'ms',
        tags: { host: `host-${Math.floor(i / 10) % 100}`, region: 'eu-west-1' },
        timestamp: iso(T0 + Math.floor(i / 1000) * 10_000),
      }));
      const before = counts();
      let r = await ctx.t.post('/api/v1/metrics', { source: 'scan_fast', metrics });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.metrics_accepted, 5000);
      assert.equal(counts().scanned, before.scanned + 1);
      // The same points with a \u escape in the source: the slow path, the same rows.
      const text = JSON.stringify({ source: 'scan_slow', metrics }).replace('"scan_slow"', '"scan\\u005fslow"');
      r = await ctx.t.request('POST', '/api/v1/metrics', text, { 'content-type': 'application/json' });
      assert.equal(r.status, 200, r.body);
      assert.equal(counts().parsed, before.parsed + 1);
      const fast = await rows('scan_fast');
      assert.equal(fast.length, 5000);
      assert.deepEqual(fast, await rows('scan_slow'));
    });

    it('reads /batch bodies; leaves bad bodies to the slow path and its answers', async () => {
      const before = counts();
      let r = await ctx.t.post('/api/v1/metrics/batch', {
        batches: [
          { source: 'scan_b1', timestamp: iso(T0), metrics: [{ name: 'up', value: 1 }] },
          { source: 'scan_b2', timestamp: T0, metrics: [{ name: 'up', value: -0.5, tags: { zone: 'a' } }] },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(counts().scanned, before.scanned + 1);
      assert.deepEqual(await rows('scan_b2'), [['up', { zone: 'a' }, null, -0.5, T0]]);

      r = await ctx.t.request('POST', '/api/v1/metrics', '{"source":"x","metrics":[{"name":"m","value":1}', {
        'content-type': 'application/json',
      });
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, /^Malformed JSON body/);

      r = await ctx.t.post('/api/v1/metrics', { source: 'x', metrics: [{ name: '1bad', value: 1 }] });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.details.field, 'metrics[0].name');

      r = await ctx.t.post('/api/v1/metrics?precision=s&precision=ms', {
        source: 'x',
        metrics: [{ name: 'm', value: 1 }],
      });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.details.parameter ?? r.json.error.details.field, 'precision');
      assert.equal(counts().scanned, before.scanned + 1);
      assert.equal(await rows('x').then((x) => x.length), 0);
    });

    it('refuses bodies that are not UTF-8 instead of storing U+FFFD in their place', async () => {
      // Two tag values that differ only in an invalid byte would have become one series.
      for (const bad of [0xff, 0xfe, 0xc3]) {
        const body = Buffer.concat([
          Buffer.from('{"source":"utf","metrics":[{"name":"m","value":1,"tags":{"k":"x'),
          Buffer.from([bad]),
          Buffer.from('y"}}]}'),
        ]);
        const r = await ctx.t.request('POST', '/api/v1/metrics', body, { 'content-type': 'application/json' });
        assert.equal(r.status, 400, r.body);
        assert.match(r.json.error.message, /not valid UTF-8/);
      }
      const latin1 = Buffer.from(
        '{"source":"utf","metrics":[{"name":"m","value":1,"tags":{"city":"München"}}]}',
        'latin1',
      );
      let r = await ctx.t.request('POST', '/api/v1/metrics', latin1, {
        'content-type': 'application/json; charset=iso-8859-1',
      });
      assert.equal(r.status, 400, r.body);
      r = await ctx.t.request(
        'POST',
        '/api/v2/write?bucket=utf',
        Buffer.from([0x6d, 0x2c, 0x6b, 0x3d, 0xff, 0x20, 0x76, 0x3d, 0x31]),
        {
          'content-type': 'text/plain',
        },
      );
      assert.equal(r.status, 400, r.body);
      assert.match(r.json.error.message, /not valid UTF-8/);
      assert.equal((await rows('utf')).length, 0);
    });

    it('gives the per-app route the hint for a timestamp in seconds, as the other routes do', async () => {
      const seconds = Math.floor(Date.now() / 1000) - 60;
      const r = await ctx.t.post('/api/v2/app/hint/metrics', {
        metrics: [{ name: 'm', value: 1, timestamp: seconds, profileId: 'p' }],
      });
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.details.field, 'metrics[0].timestamp');
      assert.match(r.json.error.message, /seconds/);
    });

    it('answers a path that is not valid percent-encoding with the error envelope, and reads Content-Encoding in any case', async () => {
      let r = await ctx.t.post('/api/v2/app/%ff/metrics', { metrics: [] });
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.code, 'INVALID_REQUEST');
      const body = gzipSync(JSON.stringify({ source: 'enc', metrics: [{ name: 'm', value: 1 }] }));
      r = await ctx.t.request('POST', '/api/v1/metrics', body, {
        'content-type': 'application/json',
        'content-encoding': 'GZIP',
      });
      assert.equal(r.status, 200, r.body);
      assert.equal((await rows('enc')).length, 1);
    });

    it('refuses a point of 100,000 tags from the bytes, before JSON.parse, on every JSON ingest route', async () => {
      const many = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v']));
      const cases: Array<[string, unknown, string]> = [
        ['/api/v1/metrics', { source: 'guard', metrics: [{ name: 'm', value: 1, tags: many }] }, 'metrics[0].tags'],
        [
          '/api/v1/metrics/batch',
          {
            batches: [
              { source: 'guard', metrics: [{ name: 'm', value: 1 }] },
              { source: 'guard', metrics: [{ name: 'm', value: 1, tags: many }] },
            ],
          },
          'batches[1].metrics[0].tags',
        ],
        ['/api/v1/metrics', { service: 'guard', metric_type: 'm', value: 1, tags: many }, 'tags'],
        [
          '/api/v2/app/guard/metrics',
          { metrics: [{ name: 'm', value: 1, timestamp: T0, tags: many }] },
          'metrics[0].tags',
        ],
      ];
      for (const [url, body, field] of cases) {
        const before = counts();
        const r = await ctx.t.post(url, body);
        assert.equal(r.status, 400, r.body);
        assert.equal(r.json.error.code, 'INVALID_REQUEST');
        assert.equal(r.json.error.details.field, field);
        assert.equal(r.json.error.message, `${field}: has more than 64 tags (INGEST_MAX_TAGS)`);
        assert.deepEqual(counts(), { ...before, refused: before.refused + 1 }, url);
        assert.notEqual(r.headers.connection, 'close'); // the body was read in full: the connection stays
      }
      assert.equal((await rows('guard')).length, 0);
    });

    it('leaves a large body within the tag limit to the slow path', async () => {
      const tags = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`key_${i}`, `value_${i}`]));
      const metrics = Array.from({ length: 100 }, (_, i) => ({ name: 'm', value: i, tags, timestamp: T0 + i * 1000 }));
      // A \u escape in the source makes the scanner decline, so the guard looks at the body first.
      const text = JSON.stringify({ source: 'guard_ok', metrics }).replace('"guard_ok"', '"guard\\u005fok"');
      assert.ok(text.length >= 64 * 1024);
      const before = counts();
      const r = await ctx.t.request('POST', '/api/v1/metrics', text, { 'content-type': 'application/json' });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(counts(), { ...before, parsed: before.parsed + 1 });
      assert.equal((await rows('guard_ok')).length, 100);
    });
  },
  {},
  { flavours: ['postgresql'] },
);
