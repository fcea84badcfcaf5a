import assert from 'node:assert/strict';
import { it } from 'node:test';
import { DAY } from '../../src/common/time.js';
import { describeEachFlavour } from '../support/suite.js';

const iso = (ms: number) => new Date(ms).toISOString();
const NOW = Date.now();

describeEachFlavour('events', (ctx) => {
  it('records events one at a time or in a list, and reads them back newest first', async () => {
    let r = await ctx.t.post('/api/v1/events', {
      kind: 'deploy',
      source: 'api',
      level: 'info',
      message: 'v1.2 rolled out',
      attributes: { version: '1.2' },
      timestamp: iso(NOW - 60_000),
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.events_accepted, 1);
    assert.equal(r.json.events[0].kind, 'deploy');
    assert.equal(typeof r.json.events[0].id, 'number');
    r = await ctx.t.post('/api/v1/events', {
      events: [
        {
          kind: 'log',
          service: 'web',
          level: 'warning',
          message: 'slow request',
          metadata: { ms: 950 },
          timestamp: NOW - 50_000,
        },
        { kind: 'log', source: 'db', level: 'error', message: 'Connection timeout', timestamp: iso(NOW - 40_000) },
      ],
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.events_accepted, 2);
    assert.equal(r.json.events[0].level, 'warn'); // `warning` is the same level
    r = await ctx.t.get('/api/v1/events');
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.json.events.map((e: { message: string }) => e.message),
      ['Connection timeout', 'slow request', 'v1.2 rolled out'],
    );
    assert.deepEqual(r.json.events[1].attributes, { ms: 950 });
  });

  it('filters by kind, source, level and a half-open time range, and pages with a cursor', async () => {
    const base = NOW - 3_600_000;
    const events = Array.from({ length: 25 }, (_, i) => ({
      kind: i % 2 ? 'audit' : 'job',
      source: `s${i % 3}`,
      level: i % 5 === 0 ? 'error' : 'info',
      message: `e${i}`,
      timestamp: base + i * 1000,
    }));
    assert.equal((await ctx.t.post('/api/v1/events', { events })).status, 201);
    const q = async (qs: string) => {
      const r = await ctx.t.get(`/api/v1/events?${qs}`);
      assert.equal(r.status, 200, r.body);
      return r.json;
    };
    assert.equal((await q('kind=audit')).events.length, 12);
    assert.equal((await q('kind=audit,job&source=s0')).events.length, 9);
    assert.deepEqual(
      (await q('kind=job,audit&level=error')).events.map((e: { message: string }) => e.message),
      ['e20', 'e15', 'e10', 'e5', 'e0'],
    );
    const range = await q(`kind=job,audit&since=${iso(base + 5_000)}&until=${iso(base + 10_000)}`);
    assert.deepEqual(
      range.events.map((e: { message: string }) => e.message),
      ['e9', 'e8', 'e7', 'e6', 'e5'],
    );
    // Paging: 25 events in pages of 10, each once, in order.
    const seen: string[] = [];
    let cursor: string | null = '';
    for (let page = 0; cursor !== null; page++) {
      const j = await q(`kind=job,audit&limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...j.events.map((e: { message: string }) => e.message));
      cursor = j.next_cursor;
      assert.ok(page < 3);
    }
    assert.deepEqual(seen, events.map((e) => e.message).reverse());
  });

  it('refuses bad events with a 400 naming the field, and stores nothing of the request', async () => {
    const before = Number((await ctx.t.sql.query('SELECT count(*) AS n FROM events')).rows[0].n);
    const bad: Array<[unknown, string]> = [
      [{ kind: 'Log', message: 'x' }, 'kind'],
      [{ message: 'x' }, 'kind'],
      [{ kind: 'log', level: 'loud' }, 'level'],
      [{ kind: 'log', message: 'nul \u0000 byte' }, 'message'],
      [{ kind: 'log', attributes: { k: 'lone \ud800 surrogate' } }, 'attributes.k'],
      [{ kind: 'log', attributes: [1, 2] }, 'attributes'],
      [{ kind: 'log', timestamp: '2024-02-30T00:00:00Z' }, 'timestamp'],
      [{ kind: 'log', timestamp: NOW - 40 * DAY }, 'timestamp'],
      [{ kind: 'log', timestamp: NOW + DAY }, 'timestamp'],
      [
        {
          events: [
            { kind: 'log', message: 'fine' },
            { kind: 'log', level: 3 },
          ],
        },
        'events[1].level',
      ],
    ];
    for (const [body, field] of bad) {
      const r = await ctx.t.post('/api/v1/events', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.body}`);
      assert.equal(r.json.error.details.field, field, r.body);
    }
    assert.equal(
      (await ctx.t.post('/api/v1/events', { events: Array.from({ length: 1001 }, () => ({ kind: 'log' })) })).status,
      413,
    );
    assert.equal((await ctx.t.get('/api/v1/events?limit=0')).status, 400);
    assert.equal((await ctx.t.get('/api/v1/events?since=yesterday')).json.error.details.parameter, 'since');
    assert.equal((await ctx.t.get('/api/v1/events?cursor=nonsense')).status, 400);
    assert.equal(Number((await ctx.t.sql.query('SELECT count(*) AS n FROM events')).rows[0].n), before);
  });

  it('serves policy events in the collector reference shape', async () => {
    let r = await ctx.t.post('/api/v1/policy/events', {
      events: [
        {
          timestamp: iso(NOW - 30_000),
          policy_id: 'client_validation',
          event_type: 'policy_executed',
          target: 'fl-client-1',
          result: 'allowed',
          details: { client_id: 'client-1', validation_result: 'passed' },
        },
        {
          timestamp: iso(NOW - 15_000),
          policy_id: 'network_quality',
          event_type: 'policy_violation',
          target: 'network_link_1',
          result: 'warning',
          details: { metric: 'latency', value: 105, threshold: 100 },
        },
      ],
    });
    assert.equal(r.status, 201, r.body);
    r = await ctx.t.get(`/policy/events?limit=10&since=${iso(NOW - 3_600_000)}`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.total, 2);
    assert.equal(r.json.since, iso(NOW - 3_600_000));
    const [violation, executed] = r.json.events;
    assert.deepEqual(
      {
        timestamp: violation.timestamp,
        policy_id: violation.policy_id,
        event_type: violation.event_type,
        target: violation.target,
        result: violation.result,
        details: violation.details,
      },
      {
        timestamp: iso(NOW - 15_000),
        policy_id: 'network_quality',
        event_type: 'policy_violation',
        target: 'network_link_1',
        result: 'warning',
        details: { metric: 'latency', value: 105, threshold: 100 },
      },
    );
    assert.equal(violation.level, 'warn');
    assert.equal(executed.policy_id, 'client_validation');
    assert.equal((await ctx.t.get('/api/v1/policy/events?limit=1')).json.events.length, 1);
    assert.equal(
      (await ctx.t.post('/api/v1/policy/events', { event_type: 'x' })).json.error.details.field,
      'policy_id',
    );
  });

  it('serves logs in the monitoring reference shape', async () => {
    let r = await ctx.t.post('/api/v1/monitoring/logs', {
      logs: [
        {
          timestamp: iso(NOW - 20_000),
          level: 'info',
          service: 'web_server',
          message: 'Request processed successfully',
          metadata: { request_id: 'req_123', duration_ms: 150 },
        },
        {
          timestamp: iso(NOW - 10_000),
          level: 'error',
          service: 'database',
          message: 'Connection timeout',
          metadata: { timeout_ms: 5000 },
        },
      ],
    });
    assert.equal(r.status, 201, r.body);
    r = await ctx.t.get('/api/v1/monitoring/logs');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.query, { level: 'all', service: null, start_time: null, end_time: null, limit: 100 });
    assert.ok(r.json.logs.length >= 2);
    r = await ctx.t.get(
      `/api/v1/monitoring/logs?level=error&service=database&start_time=${iso(NOW - 60_000)}&end_time=${iso(NOW)}&limit=5`,
    );
    assert.equal(r.json.total, 1);
    assert.deepEqual(r.json.logs[0], {
      id: r.json.logs[0].id,
      timestamp: iso(NOW - 10_000),
      level: 'error',
      service: 'database',
      message: 'Connection timeout',
      metadata: { timeout_ms: 5000 },
    });
    assert.equal(r.json.query.level, 'error');
    assert.equal(
      (await ctx.t.post('/api/v1/monitoring/logs', { level: 'info', service: 'x' })).json.error.details.field,
      'message',
    );
    assert.equal((await ctx.t.get('/api/v1/monitoring/logs?level=verbose')).status, 400);
  });

  it('drops whole days of events past EVENTS_RETENTION_DAYS with the retention job', async () => {
    // Events from before the retention was shortened: stored directly, as the API refuses them.
    const old = NOW - 40 * DAY;
    if (ctx.flavour === 'postgresql')
      await ctx.t.sql.query(
        `SELECT timescope_ensure_partition('events'::regclass, interval '1 day', $1::timestamptz)`,
        [iso(old)],
      );
    await ctx.t.sql.query(`INSERT INTO events (time, kind, level) VALUES ($1, 'old', 'info'), ($2, 'old', 'info')`, [
      iso(old),
      iso(old + 1000),
    ]);
    assert.equal((await ctx.t.post('/api/v1/events', { kind: 'recent', timestamp: NOW - 1000 })).status, 201);
    const run = await ctx.t.runJob('retention');
    const report = run.details.tables.find((t: { table: string }) => t.table === 'events');
    assert.equal(report.retention_days, 30);
    assert.equal(report.dropped.length, 1, JSON.stringify(report));
    assert.equal(report.layout, ctx.flavour === 'postgresql' ? 'partitioned' : 'hypertable');
    const left = (await ctx.t.get('/api/v1/events?kind=old,recent')).json.events.map((e: { kind: string }) => e.kind);
    assert.deepEqual(left, ['recent']);
    assert.equal(
      (await ctx.t.runJob('retention')).details.tables.find((t: { table: string }) => t.table === 'events').dropped
        .length,
      0,
    );
  });
});

describeEachFlavour('pipeline status', (ctx) => {
  it('stores system-monitor status reports as events and lists the latest status per pipeline', async () => {
    const post = (body: unknown) => ctx.t.post('/api/v1/pipelines/status', body);
    let r = await post({
      pipeline_type: 'data_ingestion',
      status: 'running',
      metadata: { step: 'data_download', progress: 45 },
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.pipeline.status, 'running');
    r = await post({ pipeline_type: 'data_ingestion', status: 'completed', metadata: { step: 'done', progress: 100 } });
    assert.equal(r.json.pipeline.reports, 2);
    r = await post({
      pipeline_type: 'training',
      pipeline_id: 'resnet-7',
      service: 'trainer',
      status: 'failed',
      metadata: { epoch: 5, loss: 0.234 },
    });
    assert.equal(r.status, 201, r.body);
    // An older report that arrives late does not overwrite the newer status.
    r = await post({
      pipeline_type: 'training',
      pipeline_id: 'resnet-7',
      status: 'running',
      timestamp: new Date(Date.now() - 60_000).toISOString(),
    });
    assert.equal(r.json.pipeline.status, 'failed');
    r = await ctx.t.get('/api/v1/pipelines/status');
    assert.equal(r.status, 200);
    const byName = Object.fromEntries(r.json.pipelines.map((p: { pipeline: string }) => [p.pipeline, p]));
    assert.equal(byName.data_ingestion.status, 'completed');
    assert.deepEqual(byName.data_ingestion.metadata, { step: 'done', progress: 100 });
    assert.equal(byName['resnet-7'].status, 'failed');
    assert.equal(byName['resnet-7'].service, 'trainer');
    assert.equal(r.json.counts.failed, 1);
    assert.equal((await ctx.t.get('/api/v1/pipelines/status?status=failed')).json.total, 1);
    const events = (await ctx.t.get('/api/v1/events?kind=pipeline_status')).json.events;
    assert.equal(events.length, 4);
    const failed = events.find((e: { level: string }) => e.level === 'error');
    assert.equal(failed.attributes.status, 'failed');
    assert.equal(failed.source, 'trainer');
  });

  it('refuses a bad report with a 400 naming the field', async () => {
    const r = await ctx.t.post('/api/v1/pipelines/status', { pipeline_type: 'training', status: 'exploded' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.details.field, 'status');
    assert.equal(
      (await ctx.t.post('/api/v1/pipelines/status', { status: 'running' })).json.error.details.field,
      'pipeline_type',
    );
    assert.equal((await ctx.t.get('/api/v1/pipelines/status?status=nope')).status, 400);
  });
});
