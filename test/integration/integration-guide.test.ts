import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeEachFlavour } from '../support/suite.js';

/**
 * system-monitor-integration.md's client posts to its base URL without /api/v1 (`${baseUrl}/services/`,
 * `/metrics/`, `/pipelines/`, `/alerts/`), with the key a service would hold: one of scope ingest.
 */
describeEachFlavour('the system-monitor integration guide at its own base URL', (ctx) => {
  it('takes its four reports at the root and under /api/v1 alike, with an ingest key', async () => {
    const key = await ctx.t.key(['ingest'], 'reporter');
    const auth = { authorization: `Bearer ${key}` };
    const post = (url: string, body: unknown) => ctx.t.post(url, body, auth);
    for (const base of ['', '/api/v1']) {
      const service = `guide-service${base ? '-v1' : ''}`;
      let r = await post(`${base}/services/`, { name: service, status: 'up', endpoint: 'http://your-service:8080' });
      assert.equal(r.status, 200, `${base} services: ${r.body}`);
      r = await post(`${base}/metrics/`, { service, metric_type: 'cpu', value: 45.2 });
      assert.equal(r.status, 200, `${base} metrics: ${r.body}`);
      assert.equal(r.json.metrics_accepted, 1);
      r = await post(`${base}/pipelines/`, {
        pipeline_type: 'data_ingestion',
        pipeline_id: `ingest${base ? '-v1' : ''}`,
        status: 'running',
        metadata: { step: 'data_download', progress: 45 },
      });
      assert.equal(r.status, 201, `${base} pipelines: ${r.body}`);
      r = await post(`${base}/alerts/`, {
        title: 'High CPU Usage',
        message: 'CPU usage above 90%',
        severity: 2,
        service,
      });
      assert.equal(r.status, 201, `${base} alerts: ${r.body}`);
    }
    const services = (await ctx.t.get('/api/v1/services')).json.services.map((s: { name: string }) => s.name);
    assert.ok(services.includes('guide-service') && services.includes('guide-service-v1'), services.join());
    const stored = await ctx.t.get('/api/v1/metrics/query?metric=cpu&source=guide-service&from=now-1h&to=now%2B1m');
    assert.equal(stored.status, 200, stored.body);
    assert.equal(stored.json.data_points[0].value, 45.2);
    const pipelines = (await ctx.t.get('/api/v1/pipelines/status')).json;
    assert.ok(JSON.stringify(pipelines).includes('"ingest"'), JSON.stringify(pipelines));
    const alerts = (await ctx.t.get('/api/v1/alerts')).json.alerts as Array<{ service: string }>;
    assert.deepEqual(alerts.map((a) => a.service).sort(), ['guide-service', 'guide-service-v1']);
    // Only those four reports are served at the root; creating a pipeline still needs /api/v1 and admin.
    const definition = await post('/pipelines', { name: 'p', stages: [] });
    assert.equal(definition.status, 400, definition.body);
  });

  it("serves collector-api.md's export at its first base URL too", async () => {
    const q = `start_date=${new Date(Date.now() - 3_600_000).toISOString()}&end_date=${new Date().toISOString()}`;
    const root = await ctx.t.get(`/export/metrics?${q}`);
    assert.ok([200, 202].includes(root.status), root.body);
    assert.match(root.json.export_id, /^exp_/);
  });
});
