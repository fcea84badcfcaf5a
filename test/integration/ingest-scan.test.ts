import assert from 'node:assert/strict';
import { it } from 'node:test';
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
  },
  {},
  { flavours: ['postgresql'] },
);
