import assert from 'node:assert/strict';
import { it } from 'node:test';
import { floorTo, HOUR, MINUTE } from '../../src/common/time.js';
import { VERSION } from '../../src/common/version.js';
import { JobsService } from '../../src/jobs/jobs.service.js';
import { emptySample, errorKey, Sample, samplePoints, SELF_SOURCE } from '../../src/monitoring/figures.js';
import { dashboardExpressions } from '../../src/monitoring/grafana-dashboard.js';
import { PERSIST_JOB, SelfMetrics } from '../../src/monitoring/self-metrics.service.js';
import { PointBatchBuilder } from '../../src/storage/point-batch.js';
import { PointWriter } from '../../src/storage/point-writer.js';
import { Resolver } from '../../src/webhooks/url-guard.js';
import { WebhookService } from '../../src/webhooks/webhook.service.js';
import type { TestApp } from '../support/app.js';
import { parseExposition } from '../support/prom-text.js';
import { sseClient } from '../support/stream-clients.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

/** Stores an interval of self-metrics as another instance would have, at time `at`. */
async function storeSample(t: TestApp, sample: Sample, at: number, instance = 'other-host:8080'): Promise<void> {
  const points = samplePoints(sample, instance);
  const b = new PointBatchBuilder(points.length);
  for (const p of points) b.push(b.addSeries(p.metric, SELF_SOURCE, p.tags, p.unit), at, p.value);
  await t.app.get(PointWriter).write(b.build(), 'test');
}

/** 100 requests of one minute: 90 answered 2xx, 8 answered 400, 2 answered 504; known latencies. */
function knownSample(): Sample {
  const s = emptySample();
  s.seconds = 60;
  s.requests['2xx'] = 90;
  s.requests['4xx'] = 8;
  s.requests['5xx'] = 2;
  s.buckets[3] = 50; // (5 ms, 10 ms]
  s.buckets[6] = 40; // (50 ms, 100 ms]
  s.buckets[9] = 10; // (500 ms, 1 s]
  s.durationSum = 50 * 0.008 + 40 * 0.08 + 10 * 0.8;
  s.min = 0.006;
  s.max = 0.9;
  s.requestBytes = 12_000;
  s.responseBytes = 48_000;
  s.ingestPoints = 6_000;
  s.errors.set(errorKey('GET', '/api/v1/metrics/query', 400, 'INVALID_QUERY'), 8);
  s.errors.set(errorKey('GET', '/api/v1/metrics/query', 504, 'QUERY_TIMEOUT'), 2);
  s.jobRuns.set('retention\u0000failed', 1);
  return s;
}

describeEachFlavour('monitoring API', (ctx) => {
  const get = async (url: string, status = 200) => {
    const r = await ctx.t.get(url);
    assert.equal(r.status, status, `${url}: ${r.body}`);
    return r.json;
  };

  it('GET /api/v1/monitoring/health/detailed: database, cache, storage and llm as the reference has them, then every component of /health', async () => {
    const h = await get('/api/v1/monitoring/health/detailed');
    assert.equal(h.status, 'healthy');
    const { database, cache, storage, llm, metrics_processor, streams } = h.components;
    assert.equal(database.status, 'healthy');
    assert.equal(database.state, 'connected');
    assert.equal(database.flavour, ctx.flavour);
    assert.ok(database.latency_ms > 0);
    const max = ctx.flavour === 'timescaledb' ? 1 : 8;
    assert.equal(database.connection_pool.max, max);
    assert.ok(database.connection_pool.active + database.connection_pool.idle <= max);
    assert.equal(cache.status, 'healthy');
    assert.equal(cache.memory_used_mb, null);
    assert.equal(cache.capacity, 200_000);
    assert.equal(storage.status, 'healthy');
    assert.ok(storage.used_gb > 0 && storage.used_bytes > 1_000_000, JSON.stringify(storage));
    assert.ok(storage.latency_ms >= 0);
    if (ctx.flavour === 'postgresql')
      assert.ok(storage.available_gb > 0, 'the test server runs on this machine: its filesystem is measured');
    else assert.equal(storage.available_gb, null, 'PGlite keeps its files in memory');
    assert.equal(llm, null);
    assert.equal(metrics_processor.status, 'healthy');
    assert.equal(metrics_processor.state, 'running');
    assert.equal(streams.state, 'running');
    assert.ok(Date.parse(h.timestamp) > Date.now() - 60_000);
    const ingestOnly = await ctx.t.key(['ingest']);
    assert.equal(
      (
        await ctx.t.request('GET', '/api/v1/monitoring/health/detailed', undefined, {
          authorization: `Bearer ${ingestOnly}`,
        })
      ).status,
      403,
    );
  });

  it('GET /api/v1/monitoring/metrics/application counts every request, errors and live-stream sessions', async () => {
    const before = (await get('/api/v1/monitoring/metrics/application')).application;
    for (let i = 0; i < 5; i++) await get('/health');
    await get('/api/v1/nothing-here', 404);
    const after = (await get('/api/v1/monitoring/metrics/application')).application;
    assert.equal(
      after.requests.total - before.requests.total,
      5 + 1 + 1,
      'five health checks, a 404 and the first application request',
    );
    assert.equal(after.errors.client_errors - before.errors.client_errors, 1);
    assert.equal(after.errors.total, 0, 'no server error');
    assert.equal(after.errors.last_error, null);
    assert.ok(after.requests.last_minute >= 7);
    assert.ok(after.requests.rate_per_second > 0);
    assert.ok(after.requests.average_latency_ms > 0);
    assert.ok(after.uptime_seconds >= 0);
    assert.equal(after.conversations, null);

    const port = await ctx.t.listen();
    const sse = await sseClient(`http://127.0.0.1:${port}/api/v1/metrics/stream?metric=anything`, ctx.t.authHeaders);
    assert.equal(sse.status, 200);
    await waitFor(
      async () => (await get('/api/v1/monitoring/metrics/application')).application.sessions.active === 1,
      5_000,
      'an open session',
    );
    sse.close();
    const closed = await waitFor(
      async () => {
        const a = (await get('/api/v1/monitoring/metrics/application')).application;
        return a.sessions.active === 0 ? a : undefined;
      },
      5_000,
      'the session to end',
    );
    assert.equal(closed.sessions.total_today - before.sessions.total_today, 1);
    assert.ok(closed.sessions.average_duration_minutes >= 0 && closed.sessions.average_duration_minutes < 1);
  });

  it('GET /api/v1/monitoring/metrics/performance reads stored self-metrics per bucket of the resolution', async () => {
    const at = floorTo(Date.now(), HOUR) - 2 * HOUR + 10 * MINUTE;
    await storeSample(ctx.t, knownSample(), at);
    const day = await get('/api/v1/monitoring/metrics/performance?period=24h&resolution=hour');
    assert.equal(day.period, '24h');
    assert.equal(day.resolution, 'hour');
    assert.ok(day.source.instances.includes('other-host:8080'));
    assert.ok(day.source.instances.includes(ctx.t.app.get(SelfMetrics).instance));
    const bucket = day.series.find(
      (b: { timestamp: string }) => b.timestamp === new Date(floorTo(at, HOUR)).toISOString(),
    );
    assert.ok(bucket, JSON.stringify(day.series));
    assert.equal(bucket.requests, 100);
    // p50: the 50th request is the last of (5 ms, 10 ms], which starts at the fastest (6 ms); p95 and p99 in (500 ms, 1 s] capped at the slowest (900 ms).
    assert.deepEqual(bucket.response_times, { p50: 10, p95: 700, p99: 860, mean: 116, min: 6, max: 900 });
    assert.deepEqual(bucket.throughput, {
      requests_per_second: 1.667,
      messages_per_second: 100,
      bytes_per_second: 1000,
      bytes_received_per_second: 200,
      bytes_sent_per_second: 800,
      stream_messages_per_second: 0,
    });
    assert.deepEqual(bucket.error_rates, { client_errors: 0.08, server_errors: 0.02, timeout_errors: 0.02 });
    assert.ok(day.requests >= 100);
    assert.equal(day.performance.response_times.max, 900, 'the period includes the stored interval');
    // An hour back does not reach it; by minute, it is its own bucket.
    const hour = await get('/api/v1/monitoring/metrics/performance?period=1h');
    assert.equal(hour.resolution, 'minute');
    assert.ok(!hour.series.some((b: { timestamp: string }) => Date.parse(b.timestamp) <= at));
    assert.ok(hour.performance.response_times === null || hour.performance.response_times.max < 900);
    const byMinute = await get('/api/v1/monitoring/metrics/performance?period=24h&resolution=minute');
    assert.equal(
      byMinute.series.find((b: { timestamp: string }) => b.timestamp === new Date(at).toISOString())?.requests,
      100,
    );
    assert.equal((await get('/api/v1/monitoring/metrics/performance?period=30d')).resolution, 'day');

    const bad = await ctx.t.get('/api/v1/monitoring/metrics/performance?period=30d&resolution=minute');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details.parameter, 'resolution');
    assert.equal(
      (await ctx.t.get('/api/v1/monitoring/metrics/performance?period=yesterday')).json.error.details.parameter,
      'period',
    );
    assert.equal(
      (await ctx.t.get('/api/v1/monitoring/metrics/performance?resolution=second')).json.error.details.parameter,
      'resolution',
    );
  });

  it('stores its own figures with the self-metrics-persist job, and counts each request once across the store', async () => {
    const self = ctx.t.app.get(SelfMetrics);
    const first = await get('/api/v1/monitoring/metrics/performance?period=1h');
    const run = await ctx.t.runJob(PERSIST_JOB);
    assert.ok(run.details.points > 5, JSON.stringify(run));
    assert.equal(run.details.instance, self.instance);
    const stored = await ctx.t.sql.query(
      `SELECT metric, tags ->> 'status_class' AS class FROM series WHERE source = $1 AND tags ->> 'instance' = $2 AND metric = 'timescope_http_requests'`,
      [SELF_SOURCE, self.instance],
    );
    assert.ok(
      stored.rows.some((r) => r.class === '2xx'),
      JSON.stringify(stored.rows),
    );
    const second = await get('/api/v1/monitoring/metrics/performance?period=1h');
    assert.equal(second.requests, first.requests + 2, 'the first performance request and the job run, nothing twice');
    assert.ok(second.source.unsaved_seconds < 30);
    assert.ok(second.performance.throughput.requests_per_second > 0);
  });

  it('GET /api/v1/monitoring/errors/summary counts 4xx/5xx by route and code, failed jobs and webhooks, over a period', async () => {
    const jobs = ctx.t.app.get(JobsService);
    if (!jobs.names().includes('always-fails')) {
      jobs.register({
        name: 'always-fails',
        description: 'test',
        every: () => 3_600_000,
        perInstance: true,
        run: async () => {
          throw new Error('boom');
        },
      });
    }
    const webhooks = ctx.t.app.get(WebhookService);
    webhooks.useResolver((async () => [{ address: '93.184.216.34', family: 4 }]) as Resolver);
    webhooks.useTransport(async () => ({ status: 410 }));
    const before = (await get('/api/v1/monitoring/errors/summary')).summary;
    await get('/api/v1/metrics/query', 400);
    await get('/api/v1/metrics/query', 400);
    await get('/api/v1/no-route-here', 404);
    assert.equal((await ctx.t.request('GET', '/api/v1/metrics/names', undefined, { authorization: '' })).status, 401);
    assert.equal((await ctx.t.post('/api/v1/system/jobs/always-fails/run')).json.outcome, 'failed');
    const d = await webhooks.enqueue({
      subject: 'test:9',
      event: 'test',
      url: 'https://hooks.example.com/gone',
      payload: {},
    });
    await waitFor(async () => (await webhooks.get(d.id)).status === 'failed', 5_000, 'the delivery to fail');

    const check = async () => {
      const s = (await get('/api/v1/monitoring/errors/summary?period=24h')).summary;
      const route = (method: string, r: string, status: number) =>
        (s.errors_by_route.find((e: any) => e.method === method && e.route === r && e.status === status)?.count ?? 0) -
        (before.errors_by_route.find((e: any) => e.method === method && e.route === r && e.status === status)?.count ??
          0);
      assert.equal(route('GET', '/api/v1/metrics/query', 400), 2);
      assert.equal(route('GET', 'unmatched', 404), 1);
      assert.equal(route('GET', '/api/v1/metrics/names', 401), 1);
      assert.equal(s.errors_by_type.INVALID_QUERY - (before.errors_by_type.INVALID_QUERY ?? 0), 2);
      assert.equal(s.errors_by_type.UNAUTHORIZED - (before.errors_by_type.UNAUTHORIZED ?? 0), 1);
      assert.equal(s.errors_by_job['always-fails'] - (before.errors_by_job['always-fails'] ?? 0), 1);
      assert.equal(s.errors_by_service.webhooks - before.errors_by_service.webhooks, 1);
      assert.equal(s.errors_by_type.WEBHOOK_FAILED - (before.errors_by_type.WEBHOOK_FAILED ?? 0), 1);
      assert.equal(s.total_errors, s.errors_by_service.http + s.errors_by_service.jobs + s.errors_by_service.webhooks);
      assert.equal(s.error_rate, Math.round((s.errors_by_service.http / s.requests) * 1e6) / 1e6);
      assert.equal(s.period, '24h');
      return s;
    };
    const s1 = await check();
    // Stored, then read back from the points: the same counts (the requests of the check itself aside).
    await ctx.t.runJob(PERSIST_JOB);
    const s2 = await check();
    assert.equal(s2.errors_by_service.http, s1.errors_by_service.http);
    // Another instance's errors three days ago: in the week, not in the day.
    await storeSample(ctx.t, knownSample(), Date.now() - 3 * 24 * HOUR);
    const week = (await get('/api/v1/monitoring/errors/summary?period=7d')).summary;
    const today = (await get('/api/v1/monitoring/errors/summary')).summary;
    assert.equal(week.errors_by_type.QUERY_TIMEOUT - (today.errors_by_type.QUERY_TIMEOUT ?? 0), 2);
    assert.equal(week.errors_by_job.retention - (today.errors_by_job.retention ?? 0), 1);
    assert.equal(week.errors_by_service.http - today.errors_by_service.http, 10, 'its ten errors');
  });

  it('GET /api/v1/monitoring/metrics/grafana: a dashboard of the self-metrics for a Prometheus datasource', async () => {
    const { dashboard } = await get('/api/v1/monitoring/metrics/grafana');
    assert.equal(dashboard.uid, 'timescope-self');
    assert.equal(dashboard.schemaVersion, 39);
    assert.equal(dashboard.__inputs[0].pluginId, 'prometheus');
    assert.ok(dashboard.panels.length >= 10);
    for (const p of dashboard.panels) {
      assert.equal(p.type, 'timeseries');
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      assert.equal(p.query, p.targets[0].expr);
      for (const target of p.targets) assert.match(target.expr, /\{job=~"\$job"\}/, target.expr);
    }
    // Every Timescope metric the dashboard reads is one the service exposes.
    const exposed = new Set(
      [...parseExposition((await ctx.t.get('/prometheus-metrics')).body).values()].flatMap((f) => [
        f.name,
        `${f.name}_bucket`,
        `${f.name}_sum`,
        `${f.name}_count`,
      ]),
    );
    for (const expr of dashboardExpressions())
      for (const [name] of expr.matchAll(/\btimescope_[a-z_]+/g)) assert.ok(exposed.has(name), `${name} in ${expr}`);
    const named = await get('/api/v1/monitoring/metrics/grafana?datasource_uid=prom-main');
    assert.equal(named.dashboard.__inputs, undefined);
    assert.equal(named.dashboard.panels[0].datasource.uid, 'prom-main');
    assert.equal((await ctx.t.get('/api/v1/monitoring/metrics/grafana?datasource_uid=no%20way')).status, 400);
  });

  it('GET /api/v1/monitoring/resources/database: pools and statements', async () => {
    const before = await get('/api/v1/monitoring/resources/database');
    await get('/api/v1/metrics/names');
    await get('/api/v1/metrics/sources');
    const r = await get('/api/v1/monitoring/resources/database');
    const max = ctx.flavour === 'timescaledb' ? 1 : 8;
    assert.equal(r.pool.max_connections, max);
    assert.deepEqual(Object.keys(r.pools), ctx.flavour === 'timescaledb' ? ['shared'] : ['read', 'write', 'buckets']);
    assert.equal(r.pool.total_created - r.pool.total_closed, r.pool.active_connections + r.pool.idle_connections);
    assert.ok(r.pool.total_created >= 1);
    assert.equal(r.pool.waiting_requests, 0);
    assert.equal(r.queries.total - before.queries.total, 2);
    assert.ok(r.queries.average_duration_ms > 0);
    assert.equal(r.queries.slow_threshold_ms, 1000);
    if (ctx.flavour === 'postgresql') assert.equal(typeof r.queries.active, 'number');
    else assert.equal(r.queries.active, null);
  });

  it('GET /api/v1/monitoring/resources/cache: the series id cache', async () => {
    const before = (await get('/api/v1/monitoring/resources/cache')).cache;
    const body = {
      source: 'cache-probe',
      metrics: [
        { name: 'cache_probe_a', value: 1 },
        { name: 'cache_probe_b', value: 2 },
      ],
    };
    assert.equal((await ctx.t.post('/api/v1/metrics', body)).status, 200);
    const mid = (await get('/api/v1/monitoring/resources/cache')).cache;
    assert.equal(mid.misses - before.misses, 2);
    assert.equal(mid.keys_count - before.keys_count, 2);
    assert.equal((await ctx.t.post('/api/v1/metrics', body)).status, 200);
    const after = (await get('/api/v1/monitoring/resources/cache')).cache;
    assert.equal(after.hits - mid.hits, 2);
    assert.equal(after.hit_rate, Math.round((after.hits / (after.hits + after.misses)) * 1e4) / 1e4);
    assert.equal(after.keys_limit, 200_000);
    assert.equal(after.memory_used_mb, null);
    assert.ok(after.series_stored >= 2);
  });

  it('GET /api/v1/monitoring/debug/info: admin only; versions, process figures, configuration without secrets', async () => {
    const webhooks = ctx.t.app.get(WebhookService);
    webhooks.useResolver((async () => [{ address: '93.184.216.34', family: 4 }]) as Resolver);
    const rule = await ctx.t.post('/api/v1/monitoring/alerts/configure', {
      name: 'debug_probe',
      metric: 'cpu_usage',
      condition: '>',
      threshold: 99,
      notify: { webhook: 'https://hooks.example.com/alerts' },
    });
    assert.equal(rule.status, 201, rule.body);
    const secret = rule.json.webhook_secret as string;
    assert.match(secret, /^whsec_/);
    const read = await ctx.t.key(['read']);
    assert.equal(
      (await ctx.t.request('GET', '/api/v1/monitoring/debug/info', undefined, { authorization: `Bearer ${read}` }))
        .status,
      403,
    );
    const r = await ctx.t.get('/api/v1/monitoring/debug/info');
    assert.equal(r.status, 200, r.body);
    const { debug } = r.json;
    assert.equal(debug.versions.timescope, VERSION);
    assert.equal(debug.versions.node, process.version);
    assert.match(debug.versions['prom-client'], /^15\./);
    assert.match(debug.versions.fastify, /^\d+\./);
    if (ctx.flavour === 'timescaledb') assert.match(debug.versions.timescaledb, /^\d+\./);
    assert.equal(debug.database.flavour, ctx.flavour);
    assert.equal(debug.goroutines, null);
    assert.equal(debug.memory_allocations, null);
    assert.ok(debug.gc_runs >= 0);
    assert.ok(debug.open_files > 0);
    assert.equal(debug.config.log_level, 'error');
    assert.equal(debug.config.debug_mode, false);
    assert.equal(debug.config.auth.keys_required, true);
    assert.ok(debug.process.memory.rss_bytes > 0);
    assert.ok(debug.process.active_resources.total > 0);
    // No secret of any kind.
    const dbUrl = new URL(ctx.t.database.url);
    assert.equal(debug.config.database.url, `${dbUrl.protocol}//${dbUrl.username}@${dbUrl.host}${dbUrl.pathname}`);
    if (dbUrl.password) assert.ok(!r.body.includes(decodeURIComponent(dbUrl.password)), 'the database password');
    assert.ok(!r.body.includes(ctx.t.adminKey!) && !r.body.includes(read), 'API keys');
    assert.ok(!r.body.includes(secret) && !r.body.includes('whsec_'), 'webhook secrets');
  });
});
