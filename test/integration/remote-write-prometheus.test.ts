import assert from 'node:assert/strict';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type pg from 'pg';
import { createApp } from '../../src/app.factory.js';
import { ApiKeysService } from '../../src/auth/api-keys.service.js';
import { closeGracefully } from '../../src/common/graceful-shutdown.js';
import { loadConfig } from '../../src/config/config.js';
import { freePort } from '../../src/database/embedded.js';
import { createTestDatabase, sqlClient, TestDatabase } from '../support/databases.js';
import { parseExposition, sampleSum } from '../support/prom-text.js';
import { prometheusSkip, requirePrometheus, RunningPrometheus, startPrometheus } from '../support/prometheus.js';
import { waitFor } from '../support/wait.js';

/*
 * The Debian `prometheus` package as the remote write sender: it scrapes a tiny local target whose
 * counter goes 1, 2, 3, … (one step per scrape, so every sample has a known, distinct value) and
 * writes to Timescope, which is restarted (graceful stop, then a new service on the same port and
 * database) while Prometheus keeps scraping and sending. In the end Timescope holds exactly the
 * samples Prometheus holds: none lost while the service was down (Prometheus retried), none doubled
 * (a resend after a 5xx or a cut connection lands on the same (series, time)).
 */
describe(
  'remote write from a real Prometheus, across a restart of the service',
  { skip: prometheusSkip('remote write from a real Prometheus') },
  () => {
    let database: TestDatabase;
    let client: pg.Client;
    let app: NestFastifyApplication | undefined;
    let port: number;
    let target: Server;
    let scrapes = 0;
    let prom: RunningPrometheus | undefined;

    /** The service as main.ts runs it, on the fixed port and database. */
    async function startService(): Promise<NestFastifyApplication> {
      const config = loadConfig({
        DATABASE_URL: database.url,
        JOBS_ENABLED: 'false',
        COLLECTOR_ENABLED: 'false',
        LOG_LEVEL: 'error',
        AUTH: 'on',
        RATE_LIMIT_ENABLED: 'false',
      });
      const a = await createApp(config, false);
      await a.listen({ port, host: '127.0.0.1' });
      return a;
    }

    before(async () => {
      requirePrometheus('remote write from a real Prometheus');
      database = await createTestDatabase('postgresql');
      client = await sqlClient(database.url);
      port = await freePort();
      app = await startService();
      const key = (await app.get(ApiKeysService).create({ name: 'prometheus', scopes: ['ingest'] }, 'test')).key;
      target = createServer((req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(
          `# TYPE rwp_sequence counter\nrwp_sequence_total ${++scrapes}\n# TYPE rwp_constant gauge\nrwp_constant{kind="fixed"} 42\n`,
        );
      });
      await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
      const targetPort = (target.address() as AddressInfo).port;
      prom = await startPrometheus(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: probe
    static_configs:
      - targets: ['127.0.0.1:${targetPort}']
remote_write:
  - url: http://127.0.0.1:${port}/api/v1/write
    authorization:
      credentials: ${key}
    remote_timeout: 5s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
      max_samples_per_send: 100
      retry_on_http_429: true
    metadata_config:
      send: false
`);
    });

    after(async () => {
      await prom?.stop();
      if (target) await new Promise((r) => target.close(r));
      if (app) await app.close();
      await client?.end();
      await database?.drop();
    });

    /** What Timescope stored of the sequence: [ms, value], by time. */
    const stored = async () =>
      (
        await client.query(
          `SELECT time, value FROM metrics WHERE metric = 'rwp_sequence_total' AND source = 'probe' ORDER BY time`,
        )
      ).rows.map((r) => [r.time.getTime(), r.value] as [number, number]);
    /** What Prometheus holds of it, from its own TSDB: [ms, value], by time. */
    const inPrometheus = async () => {
      const r = (await prom!.api(`/api/v1/query?query=${encodeURIComponent('rwp_sequence_total[10m]')}`))
        .result as Array<{ values: Array<[number, string]> }>;
      return (r[0]?.values ?? []).map(([t, v]) => [Math.round(t * 1000), Number(v)] as [number, number]);
    };

    it('stores every scraped sample exactly once, also those sent while the service restarted', async () => {
      await waitFor(
        async () => (await stored()).length >= 3,
        30_000,
        `the first samples through remote write (prometheus log: ${prom!.log()})`,
      );

      // Restart: stop as on SIGTERM (requests in flight finish, then connections close), stay down
      // for a few scrapes (Prometheus gets connection refused and retries), start again.
      await closeGracefully(app!, { drainMs: 2_000 });
      app = undefined;
      const downSince = scrapes;
      await waitFor(() => scrapes >= downSince + 3, 10_000, 'scrapes while the service is down');
      app = await startService();
      const upAt = scrapes;
      await waitFor(() => scrapes >= upAt + 2, 10_000, 'scrapes after the restart');

      // Everything Prometheus has (up to now) arrives; then the two sets are the same.
      // The exporter counts a scrape when it answers, a moment before Prometheus appends its sample.
      const expected = await waitFor(
        async () => {
          const e = await inPrometheus();
          return e.length >= 8 ? e : undefined;
        },
        10_000,
        'eight samples in Prometheus',
      );
      const last = expected[expected.length - 1][0];
      const got = await waitFor(
        async () => {
          const s = await stored();
          return s.length > 0 && s[s.length - 1][0] >= last ? s : undefined;
        },
        30_000,
        `Timescope to catch up with Prometheus (prometheus log: ${prom!.log()})`,
      );
      const upTo = (xs: Array<[number, number]>) => xs.filter(([t]) => t <= last);
      assert.deepEqual(upTo(got), expected);
      // Known values: the sequence 1, 2, 3, … without a gap or a repeat, each at its own time.
      assert.deepEqual(
        upTo(got).map(([, v]) => v),
        expected.map((_, i) => expected[0][1] + i),
      );
      assert.equal(new Set(got.map(([t]) => t)).size, got.length);
      assert.ok(
        downSince > expected[0][1] && downSince < expected[expected.length - 1][1],
        `the restart (at scrape ${downSince}) lies inside the compared samples`,
      );
      // Prometheus did meet the outage: it retried samples (connection refused), and dropped none.
      const own = parseExposition(await (await fetch(`${prom!.url}/metrics`)).text());
      const retried = sampleSum(own, 'prometheus_remote_storage_samples_retried_total');
      assert.ok(retried > 0, `samples retried: ${retried}`);
      assert.equal(sampleSum(own, 'prometheus_remote_storage_samples_failed_total'), 0);
      assert.equal(sampleSum(own, 'prometheus_remote_storage_samples_dropped_total'), 0);
      // The constant series too: one point per scrape of the same samples.
      const constant = (
        await client.query(
          `SELECT count(*) AS n, min(value) AS lo, max(value) AS hi, min(tags->>'kind') AS kind FROM metrics WHERE metric = 'rwp_constant' AND time <= $1`,
          [new Date(last)],
        )
      ).rows[0];
      assert.deepEqual(
        [Number(constant.n), constant.lo, constant.hi, constant.kind],
        [expected.length, 42, 42, 'fixed'],
      );
    });
  },
);
