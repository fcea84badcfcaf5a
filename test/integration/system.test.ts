import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createApp } from '../../src/app.factory.js';
import { loadConfig } from '../../src/config/config.js';
import { Database } from '../../src/database/database.js';
import { DB_DIR, loadScripts } from '../../src/database/migrator.js';
import { jobLockKey } from '../../src/jobs/jobs.service.js';
import { describeEachFlavour } from '../support/suite.js';

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
    const [a, b] = await Promise.all([ctx.t.post('/api/v1/system/jobs/rollup-refresh/run'), ctx.t.post('/api/v1/system/jobs/rollup-refresh/run')]);
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
    const applied = async () => (await ctx.t.sql.query(`SELECT name, applied_at FROM schema_migrations ORDER BY name`)).rows;
    const before = await applied();
    assert.ok(before.some((x) => x.name === '0002_points'));
    const again = await createApp(loadConfig({ DATABASE_URL: ctx.t.database.url, JOBS_ENABLED: 'false' }), false);
    await again.close();
    assert.deepEqual(await applied(), before);
  });
});

// Every other suite starts from a copy of the run's migrated template (test/support/templates.ts):
// this one gives the app an empty database, so the start path with MIGRATE_ON_START applies every
// migration itself, on each flavour.
describeEachFlavour(
  'migrations on an empty database',
  (ctx) => {
    it('applies every migration of the flavour at start and serves', async () => {
      const applied = (await ctx.t.sql.query(`SELECT name FROM schema_migrations ORDER BY name`)).rows.map((r) => r.name);
      assert.deepEqual(applied, loadScripts(`${DB_DIR}/migrations`, ctx.flavour).map((m) => m.name));
      assert.equal((await ctx.t.sql.query(`SELECT value FROM timescope_meta WHERE key = 'flavour'`)).rows[0].value, ctx.flavour);
      const r = await ctx.t.post('/api/v1/metrics', { source: 'm', metrics: [{ name: 'migrated', value: 1.5 }] });
      assert.equal(r.status, 200, r.body);
      assert.equal((await ctx.t.sql.query(`SELECT count(*)::int AS n FROM metrics WHERE source = 'm'`)).rows[0].n, 1);
      assert.equal((await ctx.t.get('/health')).json.components.database.flavour, ctx.flavour);
    });
  },
  {},
  { emptyDatabase: true },
);
