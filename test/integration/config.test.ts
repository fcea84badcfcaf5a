import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createApp } from '../../src/app.factory.js';
import { CollectorService } from '../../src/collector/collector.service.js';
import { AppConfig, loadConfig } from '../../src/config/config.js';
import { SettingsService } from '../../src/settings/settings.service.js';
import { startApp } from '../support/app.js';
import { createTestDatabase, FLAVOURS } from '../support/databases.js';
import { describeEachFlavour } from '../support/suite.js';

const DAY = 86_400_000;

describeEachFlavour('runtime configuration', (ctx) => {
  // Changes are made with admin keys named after their holders; the X-Actor header a client sends is not believed.
  const actorKeys = new Map<string, string>();
  const put = async (body: unknown, actor = 'ops@example') => {
    if (!actorKeys.has(actor)) actorKeys.set(actor, await ctx.t.key(['admin'], actor));
    return ctx.t.request('PUT', '/api/v1/config', body, {
      authorization: `Bearer ${actorKeys.get(actor)}`,
      'x-actor': 'mallory',
    });
  };

  it('answers the reference shape plus collector and job schedules', async () => {
    const r = await ctx.t.get('/api/v1/config');
    assert.equal(r.status, 200);
    assert.equal(r.json.storage.retention_days, 7);
    assert.equal(r.json.storage.compression_enabled, ctx.flavour === 'timescaledb');
    assert.equal(typeof r.json.storage.batch_size, 'number');
    assert.deepEqual(Object.keys(r.json.processing).sort(), ['buffer_size', 'flush_interval', 'worker_threads']);
    assert.deepEqual(Object.keys(r.json.alerting.thresholds).sort(), ['ingestion_rate', 'queue_size']);
    assert.equal(r.json.collector.interval_live, '5s');
    assert.equal(r.json.collector.interval_persist, '30s');
    assert.equal(r.json.jobs.rollup_refresh_interval, '30s');
    assert.equal(r.json.version, 0);
    assert.equal(r.json.sources['storage.retention_days'], 'default');
  });

  it('refuses a document with bad fields, naming every one, and applies none of it', async () => {
    const r = await put({
      storage: { retention_days: 3, batch_size: 'big' },
      collector: { interval_live: '0s', colour: 'red' },
      processing: { flush_interval: '5s' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'INVALID_REQUEST');
    assert.deepEqual(
      r.json.error.details.errors.map((e: { field: string }) => e.field),
      ['storage.batch_size', 'collector.interval_live', 'collector.colour', 'processing.flush_interval'],
    );
    const rule = await put({ storage: { retention_days: 400 } });
    assert.equal(rule.status, 400, 'raw retention beyond the rollups');
    assert.equal(rule.json.error.details.field, 'storage.retention_days');
    assert.equal(
      (await ctx.t.request('PUT', '/api/v1/config', '{"storage": ', { 'content-type': 'application/json' })).status,
      400,
    );
    assert.equal((await put([1, 2])).json.error.details.field, '(body)');
    const now = await ctx.t.get('/api/v1/config');
    assert.equal(now.json.storage.retention_days, 7);
    assert.equal(now.json.version, 0);
    assert.equal((await ctx.t.get('/api/v1/config/history')).json.total, 0);
  });

  it('names a broken rule between fields alongside bad values, and applies none of it', async () => {
    const r = await put({
      storage: { batch_size: 'big' },
      collector: { interval_live: '2m', interval_persist: '1m' },
      alerting: { colour: 'red' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'INVALID_REQUEST');
    assert.deepEqual(
      r.json.error.details.errors.map((e: { field: string }) => e.field),
      ['storage.batch_size', 'alerting.colour', 'collector.interval_persist'],
    );
    assert.equal(
      r.json.error.details.field,
      'storage.batch_size',
      'the envelope of ingest: the first field, then every one',
    );
    assert.match(r.json.error.message, /^storage\.batch_size: must be an integer \(and 2 more\)$/);
    assert.match(
      r.json.error.details.errors[2].message,
      /interval_persist \(1m\) must be at least interval_live \(2m\)/,
    );
    const now = await ctx.t.get('/api/v1/config');
    assert.equal(now.json.collector.interval_live, '5s');
    assert.equal(now.json.version, 0);
    // More write connections than DB_POOL_MAX leaves room for two readers is refused (8: at most 5).
    const writers = await put({ processing: { worker_threads: 6 } });
    assert.equal(writers.status, 400, writers.body);
    assert.equal(writers.json.error.details.field, 'processing.worker_threads');
    assert.match(writers.json.error.message, /at most 5 with DB_POOL_MAX=8/);
  });

  it('applies a change live: ingest refuses points past the new retention, job schedules follow', async () => {
    const old = new Date(Date.now() - 3 * DAY).toISOString();
    const body = { source: 's', metrics: [{ name: 'm', value: 1, timestamp: old }] };
    assert.equal((await ctx.t.post('/api/v1/metrics', body)).status, 200);
    const r = await put({
      storage: { retention_days: 2 },
      jobs: { rollup_refresh_interval: '2m' },
      processing: { worker_threads: 4 },
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.storage.retention_days, 2);
    assert.deepEqual(r.json.restart_required, ['processing.worker_threads']);
    assert.equal(r.json.processing.worker_threads, 2, 'the running value until a restart');
    assert.deepEqual(r.json.pending_restart, { 'processing.worker_threads': 4 });

    assert.deepEqual(
      r.json.changes.map((c: { field: string }) => c.field),
      ['storage.retention_days', 'processing.worker_threads', 'jobs.rollup_refresh_interval'],
    );
    const refused = await ctx.t.post('/api/v1/metrics', body);
    assert.equal(refused.status, 400);
    assert.match(refused.body, /older than the retention of 2 days/);
    const jobs = (await ctx.t.get('/api/v1/system/jobs')).json.jobs;
    assert.equal(jobs.find((j: { name: string }) => j.name === 'rollup-refresh').schedule, 'every 2m');
    assert.equal(ctx.t.app.get(AppConfig).retentionDays, 2);
  });

  it('records who changed what, when, before and after; a no-op is not recorded', async () => {
    assert.equal((await put({ storage: { retention_days: 2 } })).json.changes.length, 0);
    await put({ alerting: { enabled: false, thresholds: { queue_size: 1000 } } }, 'alice');
    const h = await ctx.t.get('/api/v1/config/history');
    assert.equal(h.json.total, 2);
    const [latest, first] = h.json.history;
    assert.equal(latest.version, 2);
    assert.equal(latest.changed_by, 'alice');
    assert.ok(Date.now() - Date.parse(latest.changed_at) < 60_000);
    assert.deepEqual(latest.before, { 'alerting.enabled': true, 'alerting.thresholds.queue_size': 400_000 });
    assert.deepEqual(latest.after, { 'alerting.enabled': false, 'alerting.thresholds.queue_size': 1000 });
    assert.equal(first.changed_by, 'ops@example');
    assert.equal(first.after['storage.retention_days'], 2);
    assert.equal((await ctx.t.get('/api/v1/config/history?limit=1')).json.history[0].version, 2);
    assert.equal((await ctx.t.get('/api/v1/config/history?before=2')).json.history[0].version, 1);
    assert.equal((await ctx.t.get('/api/v1/config/history?limit=0')).json.error.details.parameter, 'limit');
  });

  it('null puts a field back to its environment or default value', async () => {
    const r = await put({ alerting: { enabled: null } });
    assert.equal(r.json.alerting.enabled, true);
    assert.equal(r.json.sources['alerting.enabled'], 'default');
    assert.equal(r.json.sources['alerting.thresholds.queue_size'], 'stored');
  });

  // Last: a PUT of unchanged values still stores them (version and sources move).
  it('takes back what GET gave, read-only fields included (processing.flush_interval is "0s")', async () => {
    const doc = (await ctx.t.get('/api/v1/config')).json;
    const r = await put({ processing: doc.processing, storage: doc.storage, collector: doc.collector });
    assert.equal(r.status, 200, r.body);
    const version = (await ctx.t.get('/api/v1/config')).json.version;
    assert.equal((await put({ processing: { flush_interval: 0 } })).status, 200);
    assert.equal((await put({ processing: { flush_interval: '0s' } })).status, 200);
    assert.equal((await ctx.t.get('/api/v1/config')).json.version, version, 'a read-only field is never stored');
    const stored = (await ctx.t.sql.query(`SELECT document FROM settings WHERE id = 1`)).rows[0].document;
    assert.equal('processing.flush_interval' in stored, false);
    // A restart setting put back to the value the process runs with: no restart to wait for any more.
    assert.deepEqual((await put({ processing: { worker_threads: 5 } })).json.restart_required, [
      'processing.worker_threads',
    ]);
    const back = await put({ processing: { worker_threads: 2 } });
    assert.deepEqual(back.json.restart_required, []);
    assert.deepEqual(back.json.pending_restart, {});
  });
});

describe('runtime configuration across a restart', () => {
  for (const flavour of FLAVOURS) {
    it(`stored settings win over the environment at the next start [${flavour}]`, async () => {
      const database = await createTestDatabase(flavour);
      const env = { DATABASE_URL: database.url, JOBS_ENABLED: 'false', COLLECTOR_ENABLED: 'false', LOG_LEVEL: 'error' };
      try {
        let app = await createApp(loadConfig(env), false);
        const settings = app.get(SettingsService);
        await settings.update(
          {
            storage: { retention_days: 21 },
            collector: { interval_live: '15s', enabled: false },
            processing: { worker_threads: 3 },
          },
          { by: 'test', client: {} },
        );
        await app.close();
        // The environment now says otherwise; the stored settings still win.
        app = await createApp(
          loadConfig({
            ...env,
            METRICS_RETENTION_DAYS: '10',
            ROLLUP_RETENTION_DAYS: '14',
            METRICS_INTERVAL_PERSIST: '60',
            COLLECTOR_ENABLED: 'true',
          }),
          false,
        );
        try {
          const config = app.get(AppConfig);
          assert.equal(config.retentionDays, 21);
          assert.equal(config.collector.liveSeconds, 15);
          assert.equal(config.collector.persistSeconds, 60, 'the environment over the default');
          assert.equal(config.db.writeConnections, 3, 'a restart-only setting is in force after the restart');
          assert.equal(config.collector.enabled, false);
          assert.equal(
            app.get(CollectorService).collector.isRunning,
            false,
            'switched off in the stored settings: never started',
          );
          const doc = app.get(SettingsService).document();
          assert.equal(
            (doc as any).storage.rollup_retention_days,
            21,
            "the environment's 14 days raised to the stored raw retention, as shown",
          );
          assert.deepEqual(doc.pending_restart, {});
          assert.equal(doc.sources['collector.interval_persist'], 'environment');
          assert.equal(doc.version, 1);
        } finally {
          await app.close();
        }
      } finally {
        await database.drop();
      }
    });
  }

  it('another instance on the same database picks a change up', async () => {
    const a = await startApp('postgresql');
    try {
      const b = await createApp(
        loadConfig({
          DATABASE_URL: a.database.url,
          JOBS_ENABLED: 'false',
          COLLECTOR_ENABLED: 'false',
          LOG_LEVEL: 'error',
        }),
        false,
      );
      try {
        await a.request('PUT', '/api/v1/config', { storage: { batch_size: 1234 } });
        await b.get(SettingsService).refresh(); // what its 10-second poll does
        assert.equal(b.get(AppConfig).ingest.flushMaxPoints, 1234);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  });
});
