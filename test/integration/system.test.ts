import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createApp } from '../../src/app.factory.js';
import { loadConfig } from '../../src/config/config.js';
import { Database } from '../../src/database/database.js';
import { jobLockKey } from '../../src/database/advisory-locks.js';
import { DB_DIR, loadScripts } from '../../src/database/migrator.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

describeEachFlavour('system', (ctx) => {
  it('reports health with the database flavour and latency', async () => {
    const r = await ctx.t.get('/health');
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'healthy');
    assert.equal(r.json.service, 'timescope');
    assert.match(r.json.uptime, /\d+m/);
    assert.equal(r.json.components.database.status, 'connected');
    assert.equal(r.json.components.database.flavour, ctx.flavour);
    assert.match(r.json.components.database.response_time, /^\d+ms$/);
    assert.equal(r.json.components.metrics_processor.status, 'running');
    assert.equal((await ctx.t.get('/health/live')).status, 200);
    assert.equal((await ctx.t.get('/health/ready')).json.status, 'ok');
    // The same answer where the reference documents put /health, relative to their base URLs.
    for (const path of ['/api/v1/health', '/api/v1/monitoring/health', '/api/v2/app/your-app-id/health']) {
      const alias = await ctx.t.get(path);
      assert.equal(alias.status, 200, path);
      assert.equal(alias.json.status, 'healthy', path);
      assert.equal(alias.json.components.database.flavour, ctx.flavour, path);
    }
  });

  it('answers unknown routes with the 404 envelope', async () => {
    const r = await ctx.t.get('/api/v1/nothing-here');
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'RESOURCE_NOT_FOUND');
    assert.ok(r.json.error.timestamp);
  });

  it('serves OpenAPI and Swagger UI', async () => {
    const doc = await ctx.t.get('/swagger-ui/openapi.json');
    assert.equal(doc.status, 200);
    assert.ok(doc.json.paths['/api/v1/metrics/query']);
    assert.equal((await ctx.t.get('/swagger-ui')).status, 200);
  });

  it('lists jobs and runs one on demand', async () => {
    const r = await ctx.t.get('/api/v1/system/jobs');
    const names = r.json.jobs.map((j: { name: string }) => j.name);
    assert.ok(names.includes('rollup-refresh'));
    assert.ok(names.includes(ctx.flavour === 'postgresql' ? 'partition-premake' : 'compression'));
    for (const name of names) {
      const run = await ctx.t.post(`/api/v1/system/jobs/${name}/run`);
      assert.equal(run.status, 200, run.body);
      assert.equal(run.json.outcome, 'ok', run.body);
    }
    const after = await ctx.t.get('/api/v1/system/jobs');
    const job = after.json.jobs.find((j: { name: string }) => j.name === 'rollup-refresh');
    assert.equal(job.last_run.outcome, 'ok');
    assert.equal(job.schedule, 'every 30s');
    assert.equal((await ctx.t.post('/api/v1/system/jobs/nope/run')).status, 404);
  });

  it('runs a job once at a time: concurrent triggers join, another instance holding the lock means skipped', async () => {
    const [a, b] = await Promise.all([
      ctx.t.post('/api/v1/system/jobs/rollup-refresh/run'),
      ctx.t.post('/api/v1/system/jobs/rollup-refresh/run'),
    ]);
    assert.equal(a.json.started_at, b.json.started_at);
    if (ctx.flavour === 'timescaledb') return; // PGlite has one session: there is no "other instance"
    const other = await ctx.t.app.get(Database).dedicatedClient();
    try {
      await other.query('SELECT pg_advisory_lock(7310, $1)', [jobLockKey('rollup-refresh')]);
      const r = await ctx.t.post('/api/v1/system/jobs/rollup-refresh/run');
      assert.equal(r.json.outcome, 'skipped');
      assert.equal(r.json.details.reason, 'running on another instance');
    } finally {
      await other.end();
    }
    assert.equal((await ctx.t.post('/api/v1/system/jobs/rollup-refresh/run')).json.outcome, 'ok');
  });

  it('leaves the schema alone when started again (migrations are applied once)', async () => {
    if (ctx.flavour === 'timescaledb') return; // PGlite serves one connection: a second app cannot attach
    const applied = async () =>
      (await ctx.t.sql.query(`SELECT name, applied_at FROM schema_migrations ORDER BY name`)).rows;
    const before = await applied();
    assert.ok(before.some((x) => x.name === '0002_points'));
    const again = await createApp(loadConfig({ DATABASE_URL: ctx.t.database.url, JOBS_ENABLED: 'false' }), false);
    await again.close();
    assert.deepEqual(await applied(), before);
  });

  it('re-applies db/idempotent only when its text differs from what the database last got', async () => {
    if (ctx.flavour === 'timescaledb') return; // PGlite serves one connection: a second app cannot attach
    const restart = async () =>
      (await createApp(loadConfig({ DATABASE_URL: ctx.t.database.url, JOBS_ENABLED: 'false' }), false)).close();
    const view = async () =>
      (await ctx.t.sql.query(`SELECT to_regclass('timescope_read.series') IS NOT NULL AS present`)).rows[0].present;
    const stored = async () =>
      (await ctx.t.sql.query(`SELECT value FROM timescope_meta WHERE key = 'idempotent_sha256'`)).rows[0]?.value;
    const digest = await stored();
    assert.match(digest, /^[0-9a-f]{64}$/);
    await ctx.t.sql.query('DROP VIEW timescope_read.series');
    await restart();
    assert.equal(await view(), false, 'an unchanged text is not applied again');
    await ctx.t.sql.query(`UPDATE timescope_meta SET value = 'an older text' WHERE key = 'idempotent_sha256'`);
    await restart();
    assert.equal(await view(), true, 'a changed one is');
    assert.equal(await stored(), digest);
  });
});

describeEachFlavour(
  'health while writes are stuck',
  (ctx) => {
    it('turns degraded while a lock on points holds a write, answers promptly throughout, and recovers once it commits', async () => {
      const iso = (ms: number) => new Date(ms).toISOString();
      const T = Date.now() - 60_000;
      const point = (v: number) => ({
        source: 'h',
        metrics: [{ name: 'locked', value: v, timestamp: iso(T + v * 1000) }],
      });
      assert.equal((await ctx.t.post('/api/v1/metrics', point(0))).status, 200);
      assert.equal((await ctx.t.get('/health')).json.status, 'healthy');
      /** GET /health, timed. */
      const health = async () => {
        const t0 = performance.now();
        const r = await ctx.t.get('/health');
        return { ...r, ms: performance.now() - t0 };
      };
      // Another session holds points (the partitioned parent, and so every partition) exclusively.
      const locker = await ctx.t.app.get(Database).dedicatedClient();
      let released = false;
      const release = async () => {
        if (!released) await locker.query('COMMIT');
        released = true;
      };
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE points IN ACCESS EXCLUSIVE MODE');
        const t0 = performance.now();
        const write = ctx.t.post('/api/v1/metrics', point(1));
        let h = await health();
        while (h.json.status === 'healthy' && performance.now() - t0 < 5_000) {
          assert.ok(h.ms < 1_000, `/health took ${Math.round(h.ms)} ms while points is locked`);
          await new Promise((r) => setTimeout(r, 100));
          h = await health();
        }
        const after = performance.now() - t0;
        assert.equal(h.status, 200, 'the database answers: degraded, not unhealthy');
        assert.equal(h.json.status, 'degraded');
        const writer = h.json.components.metrics_processor;
        assert.equal(writer.status, 'stalled');
        assert.equal(writer.pending_points, 1);
        assert.ok(writer.oldest_pending_seconds >= 1, JSON.stringify(writer));
        assert.ok(after >= 1_000 && after < 2_000, `degraded after ${Math.round(after)} ms (WRITE_STALL_SECONDS=1)`);
        assert.equal(h.json.components.database.status, 'connected');
        assert.ok(h.ms < 1_000, `/health took ${Math.round(h.ms)} ms`);

        // Reads pile up behind the lock until every read connection is taken: /health says the
        // pool is busy after 1 s instead of waiting for a connection.
        // The query API's bucket reads run on the bucket pool (half the read connections, rounded up).
        const database = ctx.t.app.get(Database);
        const pool = database.bucketPool ?? ctx.t.sql;
        const connections = pool.options.max ?? 10;
        const reads = Array.from({ length: 6 }, () =>
          ctx.t.get(`/api/v1/metrics/query?metric=locked&from=${iso(T - 60_000)}&to=${iso(T + 60_000)}`),
        );
        const blocked = async () => {
          // The locker's transaction would keep seeing its first snapshot of the activity: clear it.
          const [, r] = (await locker.query(
            `SELECT pg_stat_clear_snapshot(); SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          )) as unknown as Array<{ rows: Array<{ n: number }> }>;
          return r.rows[0].n;
        };
        // The writer's COPY, and a read on each connection of the pool (DB_POOL_MAX 8 less 3 for
        // writes leaves 5 for reads, 3 of them for bucket reads); the other reads wait.
        await waitFor(
          async () => (await blocked()) === 1 + connections && pool.waitingCount > 0,
          5_000,
          'reads to take every read connection',
        );
        const busy = await health();
        assert.equal(busy.status, 200);
        assert.equal(busy.json.components.database.status, 'busy');
        assert.ok(busy.ms < 1_800, `/health took ${Math.round(busy.ms)} ms with the read pool taken`);

        await release();
        assert.equal((await write).status, 200);
        for (const r of await Promise.all(reads)) assert.equal(r.status, 200, r.body);
        const back = await waitFor(
          async () => {
            const r = await ctx.t.get('/health');
            return r.json.status === 'healthy' && r;
          },
          3_000,
          '/health to turn healthy',
        );
        assert.equal(back.json.components.metrics_processor.status, 'running');
        assert.equal(back.json.components.metrics_processor.oldest_pending_seconds, 0);
        assert.equal(
          (await ctx.t.sql.query(`SELECT count(*)::int AS n FROM metrics WHERE metric = 'locked'`)).rows[0].n,
          2,
        );
      } finally {
        await release().catch(() => undefined);
        await locker.end();
      }
    });
  },
  { WRITE_STALL_SECONDS: '1' },
  // Another session must hold the lock: PGlite serves one connection at a time.
  { flavours: ['postgresql'] },
);

// Every other suite starts from a copy of the run's migrated template (test/support/templates.ts):
// this one gives the app an empty database, so the start path with MIGRATE_ON_START applies every
// migration itself, on each flavour.
describeEachFlavour(
  'migrations on an empty database',
  (ctx) => {
    it('applies every migration of the flavour at start and serves', async () => {
      const applied = (await ctx.t.sql.query(`SELECT name FROM schema_migrations ORDER BY name`)).rows.map(
        (r) => r.name,
      );
      assert.deepEqual(
        applied,
        loadScripts(`${DB_DIR}/migrations`, ctx.flavour).map((m) => m.name),
      );
      assert.equal(
        (await ctx.t.sql.query(`SELECT value FROM timescope_meta WHERE key = 'flavour'`)).rows[0].value,
        ctx.flavour,
      );
      const r = await ctx.t.post('/api/v1/metrics', { source: 'm', metrics: [{ name: 'migrated', value: 1.5 }] });
      assert.equal(r.status, 200, r.body);
      assert.equal((await ctx.t.sql.query(`SELECT count(*)::int AS n FROM metrics WHERE source = 'm'`)).rows[0].n, 1);
      assert.equal((await ctx.t.get('/health')).json.components.database.flavour, ctx.flavour);
    });
  },
  {},
  { emptyDatabase: true },
);
