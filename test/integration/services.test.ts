import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ServiceRegistry } from '../../src/service-status/service-registry.service.js';
import { describeEachFlavour } from '../support/suite.js';

describeEachFlavour('service status', (ctx) => {
  let now = Date.now() - 3_600_000;
  const clock = () => now;

  it('registers and updates services; status changes become events', async () => {
    ctx.t.app.get(ServiceRegistry).useClock(clock);
    let r = await ctx.t.post('/api/v1/services/', {
      name: 'your-service-name',
      status: 'up',
      endpoint: 'http://your-service:8080',
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.created, true);
    assert.equal(r.json.service.status, 'up');
    assert.equal(r.json.service.ttl_seconds, 180);
    now += 60_000;
    r = await ctx.t.post('/api/v1/services', { name: 'your-service-name', status: 'up' });
    assert.equal(r.json.changed, false);
    assert.equal(r.json.service.uptime_seconds, 60);
    assert.equal(r.json.service.endpoint, 'http://your-service:8080'); // kept when not sent again
    now += 60_000;
    r = await ctx.t.post('/api/v1/services', { name: 'your-service-name', status: 'down' });
    assert.equal(r.json.changed, true);
    assert.equal(r.json.previous_status, 'up');
    assert.equal(r.json.service.uptime_seconds, 0);
    const events = (await ctx.t.get('/api/v1/events?kind=service_status&source=your-service-name')).json.events;
    assert.deepEqual(
      events.map((e: { attributes: { status: string } }) => e.attributes.status),
      ['down', 'up'],
    );
    assert.equal(events[0].level, 'error');
  });

  it('turns a service unknown once it is silent past its TTL', async () => {
    let r = await ctx.t.post('/api/v1/services', { name: 'batch-worker', status: 'up', ttl_seconds: 30 });
    assert.equal(r.status, 200, r.body);
    now += 29_000;
    await ctx.t.runJob('service-ttl');
    assert.equal((await ctx.t.get('/api/v1/services/batch-worker')).json.status, 'up');
    now += 2_000;
    const run = await ctx.t.runJob('service-ttl');
    assert.equal(run.details.expired, 1);
    r = await ctx.t.get('/api/v1/services/batch-worker');
    assert.equal(r.json.status, 'unknown');
    assert.equal(r.json.expires_at, null);
    const ev = (await ctx.t.get('/api/v1/events?kind=service_status&source=batch-worker')).json.events[0];
    assert.equal(ev.attributes.reason, 'ttl_expired');
    assert.equal(ev.attributes.previous_status, 'up');
    // Heard from again: up, and that is a change too.
    now += 1_000;
    r = await ctx.t.post('/api/v1/services', { name: 'batch-worker', status: 'up' });
    assert.equal(r.json.changed, true);
    assert.equal(r.json.previous_status, 'unknown');
    assert.equal((await ctx.t.runJob('service-ttl')).details.expired, 0);
  });

  it('lists services with uptime and availability, also in the monitoring reference shape', async () => {
    const r = await ctx.t.get('/api/v1/services');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.counts, { up: 1, down: 1, unknown: 0 });
    const svc = r.json.services.find((s: { name: string }) => s.name === 'your-service-name');
    // Up for 120 s, then down until now: 120 of the known seconds were up.
    const known = (now - Date.parse(svc.registered_at)) / 1000;
    assert.equal(svc.availability_24h.up_seconds, 120);
    assert.equal(svc.availability_24h.known_seconds, Math.round(known));
    const status = await ctx.t.get('/api/v1/monitoring/status');
    const row = status.json.services.find((s: { name: string }) => s.name === 'your-service-name');
    assert.deepEqual(
      { status: row.status, port: row.port, uptime: row.uptime_seconds },
      { status: 'stopped', port: 8080, uptime: 0 },
    );
    const worker = status.json.services.find((s: { name: string }) => s.name === 'batch-worker');
    assert.equal(worker.status, 'running');
    assert.equal(worker.uptime_seconds, 0);
    // collector-api.md's GET /metrics (its first half, at the root): services by name; the
    // system figures are null while the host collector is off (as in these tests).
    const reference = await ctx.t.get('/metrics');
    assert.equal(reference.status, 200, reference.body);
    assert.deepEqual(reference.json.services['your-service-name'], {
      status: 'unhealthy',
      response_time_ms: null,
      last_check: svc.last_seen,
    });
    assert.equal(reference.json.services['batch-worker'].status, 'healthy');
    assert.deepEqual(reference.json.system, {
      cpu_usage: null,
      memory_usage: null,
      disk_usage: null,
      network_io: { bytes_sent: null, bytes_received: null },
    });
    assert.ok(Math.abs(Date.parse(reference.json.timestamp) - Date.now()) < 60_000);
  });

  it('refuses bad reports with a 400 naming the field, and forgets services on DELETE', async () => {
    for (const [body, field] of [
      [{ status: 'up' }, 'name'],
      [{ name: 'x', status: 'sideways' }, 'status'],
      [{ name: 'x', status: 'up', ttl_seconds: 0 }, 'ttl_seconds'],
      [{ name: ' padded', status: 'up' }, 'name'],
      [{ name: 'x', status: 'up', endpoint: 42 }, 'endpoint'],
    ] as const) {
      const r = await ctx.t.post('/api/v1/services', body);
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.details.field, field);
    }
    assert.equal((await ctx.t.request('DELETE', '/api/v1/services/batch-worker')).status, 204);
    assert.equal((await ctx.t.get('/api/v1/services/batch-worker')).status, 404);
    assert.equal((await ctx.t.request('DELETE', '/api/v1/services/batch-worker')).status, 404);
  });
});
