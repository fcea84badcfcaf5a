import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../../src/common/version.js';
import { dashboardExpressions } from '../../src/monitoring/grafana-dashboard.js';
import { Resolver } from '../../src/webhooks/url-guard.js';
import { WebhookService } from '../../src/webhooks/webhook.service.js';
import { parseExposition, PromFamily, sampleSum, sampleValue } from '../support/prom-text.js';
import {
  prometheusSkip,
  PROMTOOL,
  requirePrometheus,
  RunningPrometheus,
  startPrometheus,
} from '../support/prometheus.js';
import { startApp, TestApp } from '../support/app.js';
import { sseClient } from '../support/stream-clients.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Timescope's own families: every one must be in the exposition (with HELP and TYPE), whatever happened yet. */
const FAMILIES: Record<string, PromFamily['type']> = {
  timescope_http_request_duration_seconds: 'histogram',
  timescope_http_errors_total: 'counter',
  timescope_http_request_bytes_total: 'counter',
  timescope_http_response_bytes_total: 'counter',
  timescope_query_duration_seconds: 'histogram',
  timescope_ingest_points_accepted_total: 'counter',
  timescope_ingest_points_committed_total: 'counter',
  timescope_ingest_points_rejected_total: 'counter',
  timescope_ingest_points_skipped_total: 'counter',
  timescope_ingest_queue_points: 'gauge',
  timescope_ingest_queue_capacity_points: 'gauge',
  timescope_ingest_oldest_pending_seconds: 'gauge',
  timescope_writer_transaction_duration_seconds: 'histogram',
  timescope_writer_transaction_points: 'histogram',
  timescope_stream_connections: 'gauge',
  timescope_stream_subscriptions: 'gauge',
  timescope_stream_queued_bytes: 'gauge',
  timescope_stream_connections_opened_total: 'counter',
  timescope_stream_connections_refused_total: 'counter',
  timescope_stream_clients_cut_off_total: 'counter',
  timescope_stream_messages_total: 'counter',
  timescope_job_runs_total: 'counter',
  timescope_job_last_duration_seconds: 'gauge',
  timescope_job_last_run_timestamp_seconds: 'gauge',
  timescope_job_running: 'gauge',
  timescope_webhook_deliveries_total: 'counter',
  timescope_webhook_retries_total: 'counter',
  timescope_rate_limited_requests_total: 'counter',
  timescope_auth_failures_total: 'counter',
  timescope_db_pool_connections: 'gauge',
  timescope_db_pool_waiting_requests: 'gauge',
  timescope_db_pool_max_connections: 'gauge',
  timescope_db_pool_connections_created_total: 'counter',
  timescope_db_pool_connections_closed_total: 'counter',
  timescope_series_cache_hits_total: 'counter',
  timescope_series_cache_misses_total: 'counter',
  timescope_series_cache_evictions_total: 'counter',
  timescope_series_cache_entries: 'gauge',
  timescope_series_cache_max_entries: 'gauge',
  timescope_series_stored: 'gauge',
  timescope_build_info: 'gauge',
  // A few of prom-client's default process metrics (no prefix).
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  nodejs_gc_duration_seconds: 'histogram',
};

async function scrape(t: TestApp, path = '/prometheus-metrics', headers?: Record<string, string>) {
  const r = headers ? await t.request('GET', path, undefined, headers) : await t.get(path);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['content-type'], CONTENT_TYPE);
  return parseExposition(r.body);
}

describeEachFlavour('self-metrics: Prometheus exposition', (ctx) => {
  it('serves a strictly valid text exposition at /prometheus-metrics and /api/v1/monitoring/metrics/prometheus', async () => {
    for (const path of ['/prometheus-metrics', '/api/v1/monitoring/metrics/prometheus']) {
      const families = await scrape(ctx.t, path);
      for (const [name, type] of Object.entries(FAMILIES)) {
        const f = families.get(name);
        assert.ok(f, `${name} missing at ${path}`);
        assert.equal(f.type, type, name);
      }
      for (const f of families.values()) {
        assert.ok(f.help, `${f.name} has a HELP`);
        assert.match(
          f.name,
          /^(timescope|process|nodejs)_/,
          `${f.name}: our metrics are prefixed timescope_, the process's are the defaults`,
        );
        if (f.type === 'counter') assert.match(f.name, /_total$/, `${f.name} is a counter`);
        if (f.name.startsWith('timescope_'))
          assert.doesNotMatch(f.name, /_(ms|milliseconds|minutes|kb|mb)(_|$)/, `${f.name}: base units`);
      }
      assert.equal(
        sampleValue(families, 'timescope_build_info', {
          version: VERSION,
          flavour: ctx.flavour,
          node_version: process.version,
        }),
        1,
      );
      assert.equal(sampleValue(families, 'timescope_ingest_queue_capacity_points'), 500_000);
    }
  });

  it('needs a read key; a Bearer key and the password of Basic auth are both accepted (Prometheus authorization and basic_auth)', async () => {
    assert.equal((await ctx.t.request('GET', '/prometheus-metrics', undefined, { authorization: '' })).status, 401);
    const ingestOnly = await ctx.t.key(['ingest']);
    assert.equal(
      (await ctx.t.request('GET', '/prometheus-metrics', undefined, { authorization: `Bearer ${ingestOnly}` })).status,
      403,
    );
    const read = await ctx.t.key(['read']);
    await scrape(ctx.t, '/prometheus-metrics', { authorization: `Bearer ${read}` });
    await scrape(ctx.t, '/api/v1/monitoring/metrics/prometheus', {
      authorization: `Basic ${Buffer.from(`prometheus:${read}`).toString('base64')}`,
    });
  });

  it('moves with ingest, queries, errors, refused keys and job runs', async () => {
    const before = await scrape(ctx.t);
    const v = (f: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}) =>
      sampleSum(f, name, labels);
    // Ingest through two protocols.
    const now = Date.now();
    let r = await ctx.t.post('/api/v1/metrics', {
      source: 'sm',
      metrics: [1, 2, 3].map((i) => ({ name: 'sm_cpu', value: i, timestamp: new Date(now - i * 1000).toISOString() })),
    });
    assert.equal(r.status, 200, r.body);
    r = await ctx.t.post('/api/v2/app/sm-app/metrics', {
      metrics: [{ name: 'sm_mem', value: 5, timestamp: now, tags: {}, profileId: 'p1' }],
    });
    assert.equal(r.status, 200, r.body);
    // Queries, a 404 of the query API, an unknown route, a missing key, a key without the scope.
    assert.equal((await ctx.t.get('/api/v1/metrics/query?metric=sm_cpu&from=now-1h')).status, 200);
    assert.equal((await ctx.t.get('/api/v1/metrics/query?metric=sm_cpu&from=now-1h&granularity=1m')).status, 200);
    assert.equal((await ctx.t.get('/api/v1/metrics/query?metric=nothing_like_it&from=now-1h')).status, 404);
    assert.equal((await ctx.t.get('/api/v1/no-such-route')).status, 404);
    assert.equal((await ctx.t.request('GET', '/api/v1/metrics/names', undefined, { authorization: '' })).status, 401);
    assert.equal(
      (
        await ctx.t.request('GET', '/api/v1/metrics/names', undefined, {
          authorization: `Bearer tsk_${'B'.repeat(43)}`,
        })
      ).status,
      401,
    );
    const ingestOnly = await ctx.t.key(['ingest']);
    assert.equal(
      (await ctx.t.request('GET', '/api/v1/metrics/names', undefined, { authorization: `Bearer ${ingestOnly}` }))
        .status,
      403,
    );
    await ctx.t.runJob('rollup-refresh');
    const after = await scrape(ctx.t);

    const moved = (name: string, labels: Record<string, string> = {}) =>
      v(after, name, labels) - v(before, name, labels);
    assert.equal(moved('timescope_ingest_points_accepted_total', { protocol: 'json' }), 3);
    assert.equal(moved('timescope_ingest_points_committed_total', { protocol: 'json' }), 3);
    assert.equal(moved('timescope_ingest_points_committed_total', { protocol: 'app_v2' }), 1);
    assert.ok(moved('timescope_writer_transaction_duration_seconds_count', { outcome: 'committed' }) >= 2);
    assert.ok(moved('timescope_writer_transaction_points_sum') >= 4);
    assert.ok(moved('timescope_series_cache_misses_total') >= 2, 'two new series');
    assert.equal(
      moved('timescope_query_duration_seconds_count', { route: '/api/v1/metrics/query', status_class: '2xx' }),
      2,
    );
    assert.equal(
      moved('timescope_query_duration_seconds_count', { route: '/api/v1/metrics/query', status_class: '4xx' }),
      1,
    );
    assert.equal(
      moved('timescope_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/api/v1/metrics',
        status_class: '2xx',
      }),
      1,
    );
    assert.equal(
      moved('timescope_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/api/v2/app/:appId/metrics',
        status_class: '2xx',
      }),
      1,
    );
    assert.equal(
      moved('timescope_http_errors_total', {
        route: '/api/v1/metrics/query',
        status: '404',
        code: 'RESOURCE_NOT_FOUND',
      }),
      1,
    );
    assert.equal(moved('timescope_http_errors_total', { route: 'unmatched', status: '404' }), 1);
    assert.equal(
      moved('timescope_http_errors_total', { route: '/api/v1/metrics/names', status: '401', code: 'UNAUTHORIZED' }),
      2,
    );
    assert.equal(
      moved('timescope_http_errors_total', { route: '/api/v1/metrics/names', status: '403', code: 'FORBIDDEN' }),
      1,
    );
    assert.equal(moved('timescope_auth_failures_total', { reason: 'missing_key' }), 1);
    assert.equal(moved('timescope_auth_failures_total', { reason: 'invalid_key' }), 1);
    assert.equal(moved('timescope_auth_failures_total', { reason: 'missing_scope' }), 1);
    assert.equal(moved('timescope_job_runs_total', { job: 'rollup-refresh', outcome: 'ok' }), 1);
    assert.ok(v(after, 'timescope_job_last_duration_seconds', { job: 'rollup-refresh' }) > 0);
    assert.ok(
      Math.abs(v(after, 'timescope_job_last_run_timestamp_seconds', { job: 'rollup-refresh' }) - Date.now() / 1000) <
        60,
    );
    assert.ok(moved('timescope_http_response_bytes_total') > 0);
    // No raw URL becomes a label value: the query strings above appear nowhere.
    for (const f of after.values())
      for (const s of f.samples)
        assert.ok(!Object.values(s.labels).some((l) => l.includes('?') || l.includes('sm_cpu')), JSON.stringify(s));
    // The pools: what is open is what was opened minus what was closed.
    for (const pool of ctx.flavour === 'timescaledb' ? ['shared'] : ['read', 'write']) {
      const open = v(after, 'timescope_db_pool_connections', { pool });
      assert.equal(
        v(after, 'timescope_db_pool_connections_created_total', { pool }) -
          v(after, 'timescope_db_pool_connections_closed_total', { pool }),
        open,
        pool,
      );
      assert.ok(v(after, 'timescope_db_pool_max_connections', { pool }) >= 1);
    }
  });

  it('counts live streams while they are open, and the messages sent to them', async () => {
    const port = await ctx.t.listen();
    const before = await scrape(ctx.t);
    const sse = await sseClient(`http://127.0.0.1:${port}/api/v1/metrics/stream?metric=sm_live`, ctx.t.authHeaders);
    assert.equal(sse.status, 200);
    try {
      await waitFor(
        async () => sampleValue(await scrape(ctx.t), 'timescope_stream_connections', { kind: 'sse' }) === 1,
        5_000,
        'an open SSE stream',
      );
      assert.equal(
        (await ctx.t.post('/api/v1/metrics', { source: 'sm', metrics: [{ name: 'sm_live', value: 1 }] })).status,
        200,
      );
      await sse.next((e) => e.json?.metric === 'sm_live');
      const open = await scrape(ctx.t);
      assert.equal(
        sampleValue(open, 'timescope_stream_connections_opened_total', { kind: 'sse' })! -
          sampleValue(before, 'timescope_stream_connections_opened_total', { kind: 'sse' })!,
        1,
      );
      assert.ok(sampleValue(open, 'timescope_stream_subscriptions')! >= 1);
      assert.ok(
        sampleValue(open, 'timescope_stream_messages_total')! -
          sampleValue(before, 'timescope_stream_messages_total')! >=
          1,
      );
      // The stream that was let in is a session, not an HTTP request.
      assert.equal(
        sampleSum(open, 'timescope_http_request_duration_seconds_count', { route: '/api/v1/metrics/stream' }),
        0,
      );
    } finally {
      sse.close();
    }
    await waitFor(
      async () => sampleValue(await scrape(ctx.t), 'timescope_stream_connections', { kind: 'sse' }) === 0,
      5_000,
      'the stream to close',
    );
  });

  it('counts webhook deliveries by outcome, and retries', async () => {
    const webhooks = ctx.t.app.get(WebhookService);
    webhooks.useResolver((async () => [{ address: '93.184.216.34', family: 4 }]) as Resolver);
    const answers = [503, 200, 400];
    webhooks.useTransport(async () => ({ status: answers.shift() ?? 200 }));
    const before = await scrape(ctx.t);
    const a = await webhooks.enqueue({
      subject: 'test:1',
      event: 'test',
      url: 'https://hooks.example.com/a',
      payload: { n: 1 },
    });
    await webhooks.enqueue({ subject: 'test:2', event: 'test', url: 'http://127.0.0.1/internal', payload: { n: 2 } });
    // The 503 is retried after WEBHOOK_RETRY_BASE_MS (2 s, with jitter); drain now to not wait for it.
    await waitFor(async () => (await webhooks.get(a.id)).attempts >= 1, 5_000, 'the first attempt');
    await ctx.t.sql.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1`, [a.id]);
    await webhooks.drain();
    const b = await webhooks.enqueue({
      subject: 'test:3',
      event: 'test',
      url: 'https://hooks.example.com/b',
      payload: { n: 3 },
    });
    await waitFor(async () => (await webhooks.get(b.id)).status === 'failed', 5_000, 'a failed delivery');
    const after = await scrape(ctx.t);
    const moved = (name: string, labels: Record<string, string> = {}) =>
      sampleSum(after, name, labels) - sampleSum(before, name, labels);
    assert.equal(moved('timescope_webhook_deliveries_total', { outcome: 'delivered' }), 1);
    assert.equal(moved('timescope_webhook_deliveries_total', { outcome: 'failed' }), 1);
    assert.equal(moved('timescope_webhook_deliveries_total', { outcome: 'refused' }), 1);
    assert.equal(moved('timescope_webhook_retries_total'), 1);
  });
});

describe('self-metrics: 429s by rate class', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp('postgresql', { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_MONITORING_METRICS: '2' });
  });
  after(async () => {
    await t?.close();
  });

  it('limits scrapes as monitoring metrics (per key) and counts the 429s', async () => {
    const [a, b] = [await t.key(['read'], 'scraper-a'), await t.key(['read'], 'scraper-b')];
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    assert.equal((await t.request('GET', '/prometheus-metrics', undefined, as(a))).status, 200);
    assert.equal((await t.request('GET', '/prometheus-metrics', undefined, as(a))).status, 200);
    const limited = await t.request('GET', '/api/v1/monitoring/metrics/prometheus', undefined, as(a));
    assert.equal(limited.status, 429);
    assert.equal(limited.json.error.details.class, 'monitoring_metrics');
    const seen = await scrape(t, '/prometheus-metrics', as(b));
    assert.equal(sampleValue(seen, 'timescope_rate_limited_requests_total', { class: 'monitoring_metrics' }), 1);
    assert.equal(sampleValue(seen, 'timescope_rate_limited_requests_total', { class: 'ingest' }), 0);
    assert.equal(
      sampleValue(seen, 'timescope_http_errors_total', {
        route: '/api/v1/monitoring/metrics/prometheus',
        status: '429',
        code: 'RATE_LIMIT_EXCEEDED',
      }),
      1,
    );
  });
});

describe('self-metrics scraped by a real Prometheus', { skip: prometheusSkip('the real scrape') }, () => {
  let t: TestApp;
  let prom: RunningPrometheus | undefined;

  before(async () => {
    requirePrometheus('the real scrape');
    t = await startApp('postgresql');
    const port = await t.listen();
    const key = await t.key(['read'], 'prometheus');
    const target = `['127.0.0.1:${port}']`;
    prom = await startPrometheus(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: timescope
    metrics_path: /prometheus-metrics
    authorization:
      credentials: ${key}
    static_configs:
      - targets: ${target}
  - job_name: timescope-basic
    metrics_path: /api/v1/monitoring/metrics/prometheus
    basic_auth:
      username: prometheus
      password: ${key}
    static_configs:
      - targets: ${target}
`);
  });

  after(async () => {
    await prom?.stop();
    await t?.close();
  });

  const api = (path: string) => prom!.api(path);
  const query = (expr: string) => prom!.query(expr);

  it(
    'passes promtool check metrics (naming and format lints)',
    { skip: PROMTOOL ? false : 'promtool is not installed' },
    async () => {
      const body = (await t.get('/prometheus-metrics')).body;
      const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8' });
      const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
      // prom-client's own default gauges nodejs_active_{handles,requests,resources}_total end in _total; ours must lint clean.
      const ours = problems.filter(
        (l) =>
          !/^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/.test(
            l,
          ),
      );
      assert.deepEqual(ours, [], `promtool check metrics: ${problems.join('\n')}`);
      assert.ok(r.status === 0 || problems.length > 0, `promtool failed without saying why (exit ${r.status})`);
    },
  );

  it('scrapes both paths with the key (authorization and basic_auth), and reads what the app reports', async () => {
    await waitFor(
      async () => {
        const data = await api('/api/v1/targets');
        const active = data.activeTargets as Array<{ labels: { job: string }; health: string; lastError: string }>;
        return active.length === 2 && active.every((a) => a.health === 'up') ? active : undefined;
      },
      30_000,
      `both targets up (prometheus log: ${prom!.log()})`,
    );
    for (const job of ['timescope', 'timescope-basic'])
      assert.equal((await query(`up{job="${job}"}`))[0]?.value[1], '1', job);

    const now = Date.now();
    const r = await t.post('/api/v1/metrics', {
      source: 'scraped',
      metrics: [1, 2, 3, 4, 5].map((i) => ({
        name: 'prom_probe',
        value: i,
        timestamp: new Date(now - i * 1000).toISOString(),
      })),
    });
    assert.equal(r.status, 200, r.body);
    const expected = sampleValue(
      parseExposition((await t.get('/prometheus-metrics')).body),
      'timescope_ingest_points_committed_total',
      { protocol: 'json' },
    );
    assert.equal(expected, 5);
    // After the next scrape Prometheus holds what the app reports.
    const seen = await waitFor(
      async () => {
        const result = await query('timescope_ingest_points_committed_total{job="timescope",protocol="json"}');
        return result.length === 1 && Number(result[0].value[1]) === expected ? result : undefined;
      },
      15_000,
      'Prometheus to scrape the ingest',
    );
    assert.equal(seen[0].metric.instance, `127.0.0.1:${await t.listen()}`);
    const info = await query('timescope_build_info{job="timescope-basic"}');
    assert.equal(info[0].metric.version, VERSION);
    assert.equal(info[0].metric.flavour, 'postgresql');
    // Histograms work as histograms: a quantile of the request latency is a number of seconds.
    await waitFor(
      async () =>
        (await query('sum(rate(timescope_http_request_duration_seconds_count{job="timescope"}[10s]))')).length === 1,
      15_000,
      'a rate over scrapes',
    );
  });

  it('evaluates every expression of the Grafana dashboard', async () => {
    for (const expr of dashboardExpressions()) await query(expr);
    const latency = await query(
      'histogram_quantile(0.5, sum by (le) (rate(timescope_http_request_duration_seconds_bucket{job="timescope"}[10s])))',
    );
    assert.equal(latency.length, 1);
    const p50 = Number(latency[0].value[1]);
    assert.ok(p50 > 0 && p50 < 1, `p50 ${p50} s`);
  });
});
