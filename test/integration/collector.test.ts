import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CollectorService } from '../../src/collector/collector.service.js';
import { StreamHub } from '../../src/streaming/stream-hub.js';
import { wsClient } from '../support/stream-clients.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/nvidia-smi/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'timescope-collector-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fakeSmi = join(dir, 'nvidia-smi');
writeFileSync(fakeSmi, `#!/bin/sh\ncat "${fixtures}four-gpus.csv"\n`);
chmodSync(fakeSmi, 0o755);

// Long intervals: the test polls and persists by hand, nothing runs behind its back.
const env = {
  COLLECTOR_ENABLED: 'true',
  COLLECTOR_HOSTNAME: 'test-host',
  METRICS_INTERVAL_LIVE: '3600',
  METRICS_INTERVAL_PERSIST: '3600',
  NVIDIA_SMI_PATH: fakeSmi,
};

describeEachFlavour(
  'collector',
  (ctx) => {
    const collector = () => ctx.t.app.get(CollectorService);

    it('answers the reference shapes from the live cache', async () => {
      await collector().sampleNow();
      const m = await ctx.t.get('/api/v1/collector/metrics');
      assert.equal(m.status, 200, m.body);
      assert.deepEqual(Object.keys(m.json).sort(), ['cpu', 'disk', 'gpu', 'host', 'ram', 'temperature', 'timestamp']);
      assert.ok(m.json.ram > 0 && m.json.ram <= 100);
      assert.equal(m.json.gpu, 40.25, 'mean utilization of the four recorded A100s');
      assert.deepEqual(Object.keys(m.json.disk).sort(), ['free', 'percent', 'total', 'used']);
      assert.ok(m.json.disk.total > 0);
      // collector-api.md's GET /metrics: this host's figures (memory and disk in MiB).
      const reference = (await ctx.t.get('/metrics')).json;
      assert.equal(typeof reference.system.cpu_usage, 'number');
      assert.ok(reference.system.memory_usage > 0 && reference.system.network_io.bytes_received >= 0);
      const g = await ctx.t.get('/api/v1/collector/gpu');
      assert.equal(g.json.available, true);
      assert.equal(g.json.count, 4);
      assert.equal(g.json.gpus[0].name, 'NVIDIA A100-SXM4-40GB');
      assert.equal(g.json.gpus[0].memory_total, 40960 * 1024 * 1024);
      const s = await ctx.t.get('/api/v1/monitoring/metrics');
      assert.ok(s.json.system.memory.total_gb > 0);
      assert.equal(s.json.system.cpu.load_average.length, 3);
    });

    it('persists the samples as ordinary series of the host, queryable like any metric', async () => {
      // The collector's own first poll is due 1 s after the start (the next one in an hour): wait
      // until it has answered (each sampler polled twice, with the previous test's), so that it does
      // not add to the buffer between the count below and the persist.
      const c = collector().collector;
      await waitFor(
        () => c.stats.polls >= 2 && c.samplerStates().every((s) => s.samples + s.failures + s.overlaps_skipped >= 2),
        10_000,
        'the first scheduled poll',
      );
      await collector().sampleNow();
      const pending = collector().collector.buffer.size;
      assert.ok(pending > 0);
      const run = await ctx.t.runJob('collector-persist');
      assert.equal(run.details.points, pending);
      assert.equal(run.details.pending, 0);
      const q = await ctx.t.get(
        '/api/v1/metrics/query?metric=host.memory_usage&source=test-host&from=now-1h&granularity=1m&aggregation=max',
      );
      assert.equal(q.status, 200, q.body);
      assert.equal(q.json.series_count, 1);
      assert.ok(q.json.data_points.length >= 1);
      const gpu = await ctx.t.get(
        '/api/v1/metrics/query?metric=host.gpu_power_draw_watts&source=test-host&tags=gpu:2&from=now-1h&granularity=1h&aggregation=max',
      );
      assert.equal(gpu.json.data_points[0].value, 301.5);
      const tags = await ctx.t.get('/api/v1/metrics/tags?metric=host.gpu_utilization');
      // The collector's names never mix with a user's own metric of the same name.
      assert.equal((await ctx.t.get('/api/v1/metrics/query?metric=memory_usage&from=now-1h')).status, 404);
      assert.deepEqual(tags.json.tags.gpu.sort(), ['0', '1', '2', '3']);
      const jobs = await ctx.t.get('/api/v1/system/jobs');
      const job = jobs.json.jobs.find((j: { name: string }) => j.name === 'collector-persist');
      assert.equal(job.schedule, 'every 1h');
      assert.equal(job.last_run.outcome, 'ok');
    });

    it('reports itself in /health', async () => {
      const h = await ctx.t.get('/health');
      const c = h.json.components.collector;
      assert.equal(c.status, 'running');
      assert.ok(c.last_sample);
      assert.ok(c.last_persist);
      assert.equal(c.samples_pending, 0);
      assert.equal(c.gpu, '4 GPU(s)');
    });

    it('follows PUT /api/v1/config: new intervals, then off', async () => {
      const r = await ctx.t.request('PUT', '/api/v1/config', {
        collector: { interval_live: '2s', interval_persist: '1m' },
      });
      assert.equal(r.status, 200, r.body);
      const s = (await ctx.t.get('/api/v1/collector/status')).json;
      assert.equal(s.interval_live_seconds, 2);
      assert.equal(s.interval_persist_seconds, 60);
      const before = s.samplers[0].samples;
      // The new 2 s cadence, without a restart: a sample within 2.6 s (the old cadence was an hour).
      await waitFor(
        async () => (await ctx.t.get('/api/v1/collector/status')).json.samplers[0].samples > before,
        2_600,
        'a sample at the new cadence',
      );
      await ctx.t.request('PUT', '/api/v1/config', { collector: { enabled: false } });
      const off = await ctx.t.get('/api/v1/collector/metrics');
      assert.equal(off.status, 503);
      assert.equal(off.json.error.code, 'SERVICE_UNAVAILABLE');
      assert.equal((await ctx.t.get('/health')).json.components.collector.status, 'disabled');
      assert.equal((await ctx.t.get('/api/v1/collector/status')).json.running, false);
      // What it had sampled is written when it stops, not left in memory until it is turned on again.
      await waitFor(
        async () => (await ctx.t.get('/api/v1/collector/status')).json.buffer.pending_points === 0,
        5_000,
        'the buffered samples to be written when the collector stops',
      );
    });
  },
  env,
);

describeEachFlavour(
  'collector while PostgreSQL is unreachable',
  (ctx) => {
    it('keeps samples and persists them all when the database is back', async () => {
      const c = ctx.t.app.get(CollectorService);
      // The collector's own first poll, due 1 s after the start: on a busy machine it came after the
      // persist below and left its 28 points in the buffer. Let it answer first.
      await waitFor(
        () =>
          c.collector.stats.polls >= 1 &&
          c.collector.samplerStates().every((s) => s.samples + s.failures + s.overlaps_skipped >= 1),
        10_000,
        'the first scheduled poll',
      );
      ctx.t.proxy!.cut();
      for (let i = 0; i < 3; i++) await c.sampleNow();
      const held = c.collector.buffer.size;
      assert.ok(held > 0);
      await assert.rejects(c.persist(), /kept for the next persist/);
      assert.equal(c.collector.buffer.size, held, 'nothing lost, nothing half-released');
      assert.equal(c.status().persist_failures, 1);
      assert.equal((await ctx.t.get('/health')).json.components.collector.status, 'persist_failing');
      ctx.t.proxy!.restore();
      const r = await c.persist();
      assert.equal(r.points, held);
      assert.equal((await ctx.t.sql.query(`SELECT count(*)::int AS n FROM points`)).rows[0].n, held);
      assert.equal(c.collector.buffer.size, 0);
      assert.equal((await ctx.t.get('/health')).json.components.collector.status, 'running');
    });
  },
  { ...env, DB_CONNECT_TIMEOUT_MS: '1000' },
  // As the other fault tests: PGlite is a test double for SQL, not for lost connections.
  { proxy: true, flavours: ['postgresql'] },
);

/** Holds the CPU priming of the next start until the returned function is called (the window of a start/stop race). */
function holdPrime(c: CollectorService): () => void {
  const original = c.hostSampler.prime.bind(c.hostSampler);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  c.hostSampler.prime = async () => {
    await gate;
    await original();
  };
  return () => {
    release();
    c.hostSampler.prime = original;
  };
}

async function until(what: string, check: () => boolean, ms = 3_000): Promise<void> {
  for (const end = Date.now() + ms; !check();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describeEachFlavour(
  'collector switched on and off, without nvidia-smi',
  (ctx) => {
    const collector = () => ctx.t.app.get(CollectorService);
    const setEnabled = async (enabled: boolean) =>
      assert.equal((await ctx.t.request('PUT', '/api/v1/config', { collector: { enabled } })).status, 200);
    const health = async () => (await ctx.t.get('/health')).json;

    it('is "starting" in /health until its first sample, then "running"; the service stays healthy', async () => {
      await setEnabled(false);
      const release = holdPrime(collector());
      await setEnabled(true);
      let h = await health();
      assert.equal(h.components.collector.status, 'starting', 'being started');
      assert.equal(h.status, 'healthy');
      release();
      await until('the collector to run', () => collector().collector.isRunning);
      h = await health();
      assert.equal(
        h.components.collector.status,
        'starting',
        'running, no sample yet (the first poll is a second away)',
      );
      assert.equal(h.components.collector.last_sample, null);
      assert.equal(h.status, 'healthy');
      // host-metrics-collector.md's /health: 503 until the collector samples, without a summary.
      let own = await ctx.t.get('/api/v1/collector/health');
      assert.equal(own.status, 503, own.body);
      assert.deepEqual([own.json.status, own.json.collector.status, own.json.metrics], ['unhealthy', 'starting', null]);
      await collector().sampleNow();
      assert.equal((await health()).components.collector.status, 'running');
      own = await ctx.t.get('/api/v1/collector/health');
      assert.equal(own.status, 200, own.body);
      assert.equal(own.json.status, 'healthy');
      assert.equal(own.json.collector.status, 'running');
      assert.ok(own.json.metrics.ram > 0, 'with the current metrics summary');
    });

    it('a missing nvidia-smi is "not available"; the host is still sampled and served', async () => {
      await collector().sampleNow();
      const c = (await health()).components.collector;
      assert.match(c.gpu, /^not available: nvidia-smi not found \(.*no-such-nvidia-smi\)/);
      assert.equal(c.status, 'running');
      const m = await ctx.t.get('/api/v1/collector/metrics');
      assert.equal(m.status, 200, m.body);
      assert.equal(m.json.gpu, null);
      assert.ok(m.json.ram > 0);
      const g = await ctx.t.get('/api/v1/collector/gpu');
      assert.equal(g.json.available, false);
      assert.equal(g.json.count, 0);
    });

    it("streams the host's figures as they are sampled over monitoring-api.md's WebSocket", async () => {
      await collector().sampleNow();
      const port = await ctx.t.listen();
      const ws = await wsClient(port, '/api/v1/monitoring/ws/metrics', ctx.t.authHeaders);
      try {
        // The latest sample at once, then every new one, as flat metric_update messages.
        await waitFor(() => ws.messages.some((m) => m.metric === 'cpu_usage'), 3_000, 'the latest sample');
        const first = ws.messages.length;
        const cpu = ws.messages.find((m) => m.metric === 'cpu_usage');
        assert.deepEqual(Object.keys(cpu).sort(), ['metric', 'timestamp', 'type', 'value']);
        assert.equal(cpu.type, 'metric_update');
        assert.equal(typeof cpu.value, 'number');
        assert.ok(ws.messages.some((m) => m.metric === 'memory_usage' && m.value > 0 && m.value <= 100));
        await collector().sampleNow();
        await waitFor(() => ws.messages.length >= 2 * first, 3_000, 'the next sample');
        assert.ok(Date.parse(ws.messages.at(-1).timestamp) >= Date.parse(cpu.timestamp));
      } finally {
        await ws.close();
      }
      await waitFor(() => ctx.t.app.get(StreamHub).connectionCount === 0, 3_000, 'the slot given back');
      // Behind the front door like every stream: no key, no socket.
      await assert.rejects(wsClient(port, '/api/v1/monitoring/ws/metrics'), /401/);
    });

    it('turned off while it is being started: it does not start anyway', async () => {
      await setEnabled(false);
      assert.equal(collector().collector.isRunning, false);
      const release = holdPrime(collector());
      await setEnabled(true);
      await setEnabled(false);
      release();
      await new Promise((r) => setTimeout(r, 300)); // time for the held start to finish
      assert.equal(collector().collector.isRunning, false);
      assert.equal((await health()).components.collector.status, 'disabled');
      const own = await ctx.t.get('/api/v1/collector/health');
      assert.equal(own.status, 503, own.body);
      assert.deepEqual([own.json.collector.status, own.json.metrics], ['disabled', null]);
      await setEnabled(true);
      await until('the collector to run again', () => collector().collector.isRunning);
    });
  },
  {
    COLLECTOR_ENABLED: 'true',
    METRICS_INTERVAL_LIVE: '3600',
    METRICS_INTERVAL_PERSIST: '3600',
    NVIDIA_SMI_PATH: join(dir, 'no-such-nvidia-smi'),
  },
  { flavours: ['postgresql'] },
);
