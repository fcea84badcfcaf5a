import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachFlavour } from '../support/suite.js';
import { PointWriter } from '../../src/storage/point-writer.js';
import { waitFor } from '../support/wait.js';

describeEachFlavour(
  'database outage',
  (ctx) => {
    const point = (v: number) => ({
      source: 'outage',
      metrics: [{ name: 'm', value: v, timestamp: Date.now() - 60_000 + v }],
    });
    const stored = async () =>
      (await ctx.t.sql.query(`SELECT value FROM metrics WHERE source = 'outage' ORDER BY value`)).rows.map(
        (r) => r.value,
      );

    it('answers 503 + Retry-After while the database is unreachable, stores nothing it did not acknowledge, and recovers', async () => {
      assert.equal((await ctx.t.post('/api/v1/metrics', point(1))).status, 200);
      assert.equal((await ctx.t.get('/health')).status, 200);

      ctx.t.proxy!.cut();
      const health = await ctx.t.get('/health');
      assert.equal(health.status, 503);
      assert.equal(health.json.status, 'unhealthy');
      assert.equal(health.json.components.database.status, 'unreachable');
      assert.equal((await ctx.t.get('/health/ready')).status, 503);
      const refused = await ctx.t.post('/api/v1/metrics', point(2));
      assert.equal(refused.status, 503, refused.body);
      assert.equal(refused.json.error.code, 'SERVICE_UNAVAILABLE');
      assert.ok(Number(refused.headers['retry-after']) > 0);
      assert.equal((await ctx.t.get('/api/v1/metrics/query?metric=m')).status, 503);

      ctx.t.proxy!.restore();
      await waitFor(async () => (await ctx.t.get('/health')).status === 200, 15_000, 'health to recover');
      assert.equal((await ctx.t.post('/api/v1/metrics', point(3))).status, 200);
      assert.deepEqual(await stored(), [1, 3]);
    });

    it('keeps every acknowledged point when connections are reset in the middle of writes, and answers only 200 or 503', async () => {
      const t0 = Date.now() - 120_000;
      const body = (r: number) => ({
        source: `reset${r}`,
        metrics: Array.from({ length: 2_000 }, (_, i) => ({
          name: 'm',
          value: i,
          timestamp: t0 + i,
          tags: { s: String(i % 50) },
        })),
      });
      const inFlight = Array.from({ length: 24 }, (_, r) => ctx.t.post('/api/v1/metrics', body(r)));
      // Cut once the first transaction has committed: the others are being written or wait their turn.
      const writer = ctx.t.app.get(PointWriter);
      const before = writer.stats.transactions;
      await waitFor(async () => writer.stats.transactions > before, 15_000, 'a first commit');
      ctx.t.proxy!.cut();
      const replies = await Promise.all(inFlight);
      ctx.t.proxy!.restore();
      await waitFor(async () => (await ctx.t.get('/health')).status === 200, 15_000, 'health to recover');
      const counts = new Map<string, number>(
        (
          await ctx.t.sql.query(
            `SELECT source, count(*)::int AS n FROM metrics WHERE source LIKE 'reset%' GROUP BY source`,
          )
        ).rows.map((r) => [r.source, r.n]),
      );
      replies.forEach((reply, r) => {
        assert.ok(reply.status === 200 || reply.status === 503, `request ${r}: ${reply.status} ${reply.body}`);
        const n = counts.get(`reset${r}`) ?? 0;
        if (reply.status === 200) assert.equal(n, 2_000, `request ${r} was acknowledged`);
        else assert.ok(n === 0 || n === 2_000, `request ${r}: ${n} of 2000 points stored (a half batch)`);
      });
      // The service writes again on the same pools.
      assert.equal((await ctx.t.post('/api/v1/metrics', body(99))).status, 200);
    });
  },
  { DB_CONNECT_TIMEOUT_MS: '1000' },
  // Fault tests need a real server: PGlite is a test double for SQL, not for lost connections
  // (reliability.md §0), and its socket server does not recover from a reset mid-query.
  { proxy: true, flavours: ['postgresql'] },
);
