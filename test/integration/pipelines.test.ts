import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import type { Resolver } from '../../src/webhooks/url-guard.js';
import { WebhookService } from '../../src/webhooks/webhook.service.js';
import { referencePipeline } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

const reference = referencePipeline;

describeEachFlavour('pipeline definitions', (ctx) => {
  const addresses: Record<string, string> = { 'your-system.com': '93.184.216.34', 'inside.example.com': '10.1.2.3' };

  before(() => {
    // No test resolves a real name or opens a socket.
    const webhooks = ctx.t.app.get(WebhookService);
    webhooks.useResolver((async (host: string) =>
      addresses[host] ? [{ address: addresses[host], family: 4 }] : []) as Resolver);
    webhooks.useTransport(async () => ({ status: 204 }));
  });

  const count = async () => (await ctx.t.get('/api/v1/pipelines')).json.total as number;
  const put = (url: string, body: unknown) => ctx.t.request('PUT', url, body);

  it('saves the reference example at the reference route, and shows a secret it made once', async () => {
    const r = await ctx.t.post('/api/v1/metrics/pipeline', reference());
    assert.equal(r.status, 201, r.body);
    assert.equal(typeof r.json.id, 'number');
    assert.equal(r.json.name, 'experiment_summary');
    assert.deepEqual(r.json.columns, ['avg_cpu', 'max_cpu', 'avg_memory', 'max_memory', 'value']);
    assert.deepEqual(r.json.output, { destination: 'webhook', url: 'https://your-system.com/webhook' });
    assert.match(r.json.webhook_secret, /^whsec_/);
    assert.equal(r.json.webhook_signed, true);
    assert.equal(r.json.schedule, null);
    assert.equal(r.json.version, 1);

    const got = await ctx.t.get(`/api/v1/pipelines/${r.json.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.json.webhook_secret, undefined);
    assert.ok(!got.body.includes(r.json.webhook_secret));
    assert.equal(got.json.webhook_signed, true);
    assert.deepEqual(got.json.pipeline, r.json.pipeline);
    assert.equal(got.json.last_run, null);
    const list = await ctx.t.get('/api/v1/pipelines/');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.json.pipelines.map((p: { name: string }) => p.name),
      ['experiment_summary'],
    );
  });

  it('refuses a second pipeline of the same name with 409', async () => {
    const r = await ctx.t.post('/api/v1/pipelines', reference());
    assert.equal(r.status, 409);
    assert.equal(r.json.error.code, 'CONFLICT');
    assert.equal(r.json.error.details.field, 'name');
  });

  it('answers 400 naming the stage index and field, and stores nothing', async () => {
    const before = await count();
    const cases: Array<[unknown, string]> = [
      [
        {
          ...reference(),
          name: 'hostile',
          pipeline: [
            ...reference().pipeline.slice(0, 2),
            { operation: 'transform', params: { formula: "constructor.constructor('return process')()" } },
          ],
        },
        'pipeline[2].params.formula',
      ],
      [
        {
          ...reference(),
          name: 'unknown-stage',
          pipeline: [...reference().pipeline, { operation: 'sort', params: {} }],
        },
        'pipeline[3].operation',
      ],
      [
        {
          ...reference(),
          name: 'bad-window',
          pipeline: [
            reference().pipeline[0],
            { operation: 'aggregate', params: { window: 'five', functions: ['avg', 'max'] } },
            reference().pipeline[2],
          ],
        },
        'pipeline[1].params.window',
      ],
      [
        { ...reference(), name: 'ssrf', output: { destination: 'webhook', url: 'http://127.0.0.1:5432/' } },
        'output.url',
      ],
      [
        {
          ...reference(),
          name: 'ssrf-dns',
          output: { destination: 'webhook', url: 'https://inside.example.com/hook' },
        },
        'output.url',
      ],
      [
        {
          ...reference(),
          name: 'ssrf-metadata',
          output: { destination: 'webhook', url: 'http://169.254.169.254/latest/meta-data' },
        },
        'output.url',
      ],
    ];
    for (const [body, field] of cases) {
      const r = await ctx.t.post('/api/v1/pipelines', body);
      assert.equal(r.status, 400, `${field}: ${r.body}`);
      assert.equal(r.json.error.code, 'INVALID_REQUEST');
      assert.equal(r.json.error.details.field, field, r.body);
      assert.ok(r.json.error.message.startsWith(field), r.json.error.message);
    }
    assert.equal(
      (await ctx.t.post('/api/v1/pipelines', 'not json', { 'content-type': 'application/json' })).status,
      400,
    );
    assert.equal(await count(), before);
  });

  it('replaces a definition with PUT of its own GET document, and refuses a bad one without changing it', async () => {
    const created = await ctx.t.post('/api/v1/pipelines', {
      name: 'cpu-p95',
      pipeline: [
        { operation: 'filter', params: { metrics: ['cpu'] } },
        { operation: 'aggregate', params: { window: '1m', functions: ['p95'] } },
      ],
      output: { destination: 'metric', metric: 'cpu_p95' },
    });
    assert.equal(created.status, 201, created.body);
    const url = `/api/v1/pipelines/${created.json.id}`;
    const doc = (await ctx.t.get(url)).json;
    const r = await put(url, { ...doc, schedule: { every: '1m' }, description: 'p95 of cpu each minute' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.version, 2);
    assert.deepEqual(r.json.schedule, { every: '1m', delay: '30s' });
    assert.equal(r.json.description, 'p95 of cpu each minute');
    assert.ok(r.json.state.next_window_end);

    const bad = await put(url, {
      ...doc,
      pipeline: [doc.pipeline[0], { operation: 'aggregate', params: { window: '1m', functions: ['p95', 'p42'] } }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details.field, 'pipeline[1].params.functions[1]');
    const after = (await ctx.t.get(url)).json;
    assert.equal(after.version, 2);
    assert.deepEqual(after.pipeline, r.json.pipeline);

    assert.equal((await put('/api/v1/pipelines/999999', doc)).status, 404);
    const renamed = await put(url, { ...doc, name: 'experiment_summary' });
    assert.equal(renamed.status, 409);
  });

  it('keeps the webhook secret across a PUT that does not mention it, and can drop it', async () => {
    const list = (await ctx.t.get('/api/v1/pipelines')).json.pipelines;
    const ref = list.find((p: { name: string }) => p.name === 'experiment_summary');
    const url = `/api/v1/pipelines/${ref.id}`;
    const kept = await put(url, { ...ref, description: 'kept' });
    assert.equal(kept.status, 200, kept.body);
    assert.equal(kept.json.webhook_signed, true);
    assert.equal(kept.json.webhook_secret, undefined);
    const unsigned = await put(url, { ...ref, output: { ...ref.output, secret: null } });
    assert.equal(unsigned.json.webhook_signed, false);
  });

  it('deletes with 204, then 404', async () => {
    const created = await ctx.t.post('/api/v1/pipelines', { ...reference(), name: 'short-lived' });
    const url = `/api/v1/pipelines/${created.json.id}`;
    assert.equal((await ctx.t.request('DELETE', url)).status, 204);
    const gone = await ctx.t.get(url);
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error.code, 'RESOURCE_NOT_FOUND');
    assert.equal((await ctx.t.request('DELETE', url)).status, 404);
    assert.equal((await ctx.t.post(`${url}/run`)).status, 404);
    assert.equal((await ctx.t.get(`${url}/runs`)).status, 404);
  });

  it('leaves /api/v1/pipelines/status to pipeline status reports: no :id route answers it', async () => {
    const r = await ctx.t.get('/api/v1/pipelines/status');
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json.pipelines), r.body); // the status list, not the get-by-id handler
    assert.equal((await ctx.t.post('/api/v1/pipelines/status/run')).status, 404);
    assert.equal((await ctx.t.get('/api/v1/pipelines/abc')).status, 404);
    assert.equal((await ctx.t.get('/api/v1/pipelines/1e3')).status, 404);
  });

  it('takes a status report sent to /pipelines/ (the system-monitor client) as a pipeline status report', async () => {
    const r = await ctx.t.post('/api/v1/pipelines/', {
      pipeline_type: 'training',
      status: 'running',
      metadata: { epoch: 3 },
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.pipeline.pipeline_type, 'training');
    assert.equal(r.json.pipeline.status, 'running');
    const latest = (await ctx.t.get('/api/v1/pipelines/status')).json.pipelines.find(
      (p: { pipeline: string }) => p.pipeline === 'training',
    );
    assert.deepEqual(latest.metadata, { epoch: 3 });
  });

  it('refuses unknown fields in a run body and bad limits', async () => {
    const id = (await ctx.t.get('/api/v1/pipelines')).json.pipelines[0].id;
    const r = await ctx.t.post(`/api/v1/pipelines/${id}/run`, { form: 'now-1h' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.details.field, 'form');
    assert.equal(
      (await ctx.t.post(`/api/v1/pipelines/${id}/dry-run?from=yesterday`)).json.error.details.parameter,
      'from',
    );
    assert.equal((await ctx.t.get(`/api/v1/pipelines/${id}/runs?limit=0`)).status, 400);
  });

  it('forgets runs older than PIPELINE_RUNS_RETENTION_DAYS', async () => {
    const id = (await ctx.t.get('/api/v1/pipelines')).json.pipelines[0].id;
    await ctx.t.post(`/api/v1/pipelines/${id}/run`);
    await ctx.t.post(`/api/v1/pipelines/${id}/run`);
    await ctx.t.sql.query(
      `UPDATE pipeline_runs SET started_at = now() - interval '31 days' WHERE id = (SELECT min(id) FROM pipeline_runs WHERE pipeline_id = $1)`,
      [id],
    );
    const job = await ctx.t.runJob('pipeline-runs-prune');
    assert.equal(job.details.deleted, 1);
    assert.equal((await ctx.t.get(`/api/v1/pipelines/${id}/runs`)).json.runs.length, 1);
  });

  it('runs again after its lock connection was cut (a new session takes the locks)', async () => {
    if (ctx.flavour !== 'postgresql') return; // PGlite: one session, no lock connection
    const id = (await ctx.t.get('/api/v1/pipelines')).json.pipelines[0].id;
    assert.equal((await ctx.t.post(`/api/v1/pipelines/${id}/run`)).status, 200);
    const cut = await ctx.t.sql.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_advisory_unlock%' AND pid <> pg_backend_pid()`,
    );
    assert.ok(cut.rows.length >= 1 && cut.rows.every((r) => r.ok), 'the lock connection was found and cut');
    await new Promise((r) => setTimeout(r, 50));
    const again = await ctx.t.post(`/api/v1/pipelines/${id}/run`);
    assert.equal(again.status, 200, again.body);
    assert.equal((await ctx.t.runJob('pipeline-runs-prune')).outcome, 'ok', "the jobs' lock connection too");
  });

  it('lists itself in the health components and the jobs', async () => {
    const health = await ctx.t.get('/health');
    assert.ok(health.json.components.pipelines, health.body);
    const jobs = (await ctx.t.get('/api/v1/system/jobs')).json.jobs.map((j: { name: string }) => j.name);
    assert.ok(jobs.includes('pipelines') && jobs.includes('pipeline-runs-prune'));
  });
});
