import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Database } from '../../src/database/database.js';
import type { TestApp } from '../support/app.js';
import { ingest } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** Stores `metric`'s points (one series) through the API. */
const store = (t: TestApp, metric: string, points: Array<{ t: number; v: number }>) =>
  ingest(
    t,
    points.map(({ t: time, v }) => ({ metric, source: 'prep', tags: {}, t: time, v })),
  );

/** The buckets of `metric` over [from, to) through the query API, as (time, value) pairs. */
async function buckets(t: TestApp, metric: string, from: number, to: number, granularity: string, aggregation: string) {
  const r = await t.get(
    `/api/v1/metrics/query?metric=${metric}&from=${iso(from)}&to=${iso(to)}&granularity=${granularity}&aggregation=${aggregation}`,
  );
  assert.equal(r.status, 200, r.body);
  return (r.json.data_points as Array<{ timestamp: string; value: number }>).map((p) => [p.timestamp, p.value]);
}

/**
 * The query API's bucket reads run as named statements with generic plans on the bucket pool
 * (plain PostgreSQL server). A generic plan is made once per connection and shape: it must still
 * see partitions made after it (a backfill into a new day), and give the same answers as the
 * planned-each-time path.
 */
describeEachFlavour(
  'prepared bucket reads',
  (ctx) => {
    const now = Date.now();
    const query = (from: number, to: number, granularity: string, aggregation: string) =>
      buckets(ctx.t, 'prepared_read', from, to, granularity, aggregation);

    it('run on the bucket pool, the same answer every time', async () => {
      const database = ctx.t.app.get(Database);
      assert.ok(database.bucketPool, 'a server with DB_POOL_MAX 8 has a bucket pool');
      const start = Math.floor((now - 30 * MINUTE) / (5 * MINUTE)) * 5 * MINUTE; // buckets start on 5-minute marks
      await store(
        ctx.t,
        'prepared_read',
        Array.from({ length: 20 }, (_, i) => ({ t: start + i * MINUTE, v: i })),
      );
      const first = await query(start, start + 20 * MINUTE, '5m', 'sum');
      assert.deepEqual(first, [
        [iso(start), 0 + 1 + 2 + 3 + 4],
        [iso(start + 5 * MINUTE), 5 + 6 + 7 + 8 + 9],
        [iso(start + 10 * MINUTE), 10 + 11 + 12 + 13 + 14],
        [iso(start + 15 * MINUTE), 15 + 16 + 17 + 18 + 19],
      ]);
      // More runs than PostgreSQL's five custom plans before it would weigh a generic one.
      for (let i = 0; i < 8; i++) assert.deepEqual(await query(start, start + 20 * MINUTE, '5m', 'sum'), first);
      assert.ok(database.bucketPool.totalCount >= 1, 'the reads used the bucket pool');
      assert.ok(database.preparedShapes >= 1);
    });

    it('see a partition made after the statement was planned', async () => {
      const from = Math.floor((now - 40 * DAY) / DAY) * DAY;
      const to = Math.floor(now / DAY) * DAY;
      // Same shape before and after (one raw segment: `first` never comes from rollups).
      const before = await query(from, to, '1d', 'first');
      for (let i = 0; i < 6; i++) assert.deepEqual(await query(from, to, '1d', 'first'), before);
      const old = from + 5 * DAY + 3_600_000; // a day with no partition yet
      await store(ctx.t, 'prepared_read', [{ t: old, v: 42 }]);
      assert.deepEqual(await query(from, to, '1d', 'first'), [[iso(from + 5 * DAY), 42], ...before]);
    });
  },
  { METRICS_RETENTION_DAYS: '60' },
  { flavours: ['postgresql'] },
);

describeEachFlavour(
  'prepared bucket reads, bounded',
  (ctx) => {
    it('name at most DB_PREPARED_READS shapes; the others are planned each time, with the same answers', async () => {
      const start = Math.floor((Date.now() - 20 * MINUTE) / (10 * MINUTE)) * 10 * MINUTE; // one 10m bucket
      await store(
        ctx.t,
        'capped',
        Array.from({ length: 10 }, (_, i) => ({ t: start + i * MINUTE, v: i })),
      );
      const values: unknown[] = [];
      for (const aggregation of ['sum', 'max', 'count'])
        for (let i = 0; i < 3; i++)
          values.push(...(await buckets(ctx.t, 'capped', start, start + 10 * MINUTE, '10m', aggregation)));
      const at = iso(start);
      assert.deepEqual(values, [
        ...Array<unknown>(3).fill([at, 45]),
        ...Array<unknown>(3).fill([at, 9]),
        ...Array<unknown>(3).fill([at, 10]),
      ]);
      assert.equal(ctx.t.app.get(Database).preparedShapes, 1);
    });
  },
  { DB_PREPARED_READS: '1' },
  { flavours: ['postgresql'] },
);

describeEachFlavour(
  'prepared bucket reads off',
  (ctx) => {
    it('DB_PREPARED_READS=0: no bucket pool, every read on the general pool', async () => {
      const database = ctx.t.app.get(Database);
      assert.equal(database.bucketPool, undefined);
      const start = Math.floor((Date.now() - 20 * MINUTE) / MINUTE) * MINUTE;
      await store(ctx.t, 'unprepared', [{ t: start, v: 7 }]);
      assert.deepEqual(await buckets(ctx.t, 'unprepared', start, start + MINUTE, '1m', 'avg'), [[iso(start), 7]]);
      assert.equal(database.preparedShapes, 0);
      assert.equal((await ctx.t.get('/api/v1/monitoring/resources/database')).json.pools.buckets, undefined);
    });
  },
  { DB_PREPARED_READS: '0' },
  { flavours: ['postgresql'] },
);
