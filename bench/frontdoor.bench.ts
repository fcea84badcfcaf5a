import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authHeaders, benchServer, flag, option, percentile, sleep, startService, table } from './lib.js';

/**
 * The front door under expensive requests (issue 11): does /health keep answering while clients
 * send 10 MB bodies without a key, 10 MB bodies with one, points with 100,000 tags and queries
 * with 100,000 tag filters? A probe asks GET /health/live every 20 ms on its own connection and
 * records how long each answer takes; each load runs for a few seconds next to it, after a quiet
 * baseline measured in the same run.
 */
const SECONDS = flag('quick') ? 3 : 8;
const CLIENTS = option('clients', 4);

function send(url: string, method: string, body: Buffer | undefined, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      { method, agent: false, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0)); // the server may close a refused upload before it is all sent
    req.end(body);
  });
}

async function main(): Promise<void> {
  const server = await benchServer(join(tmpdir(), `timescope-bench-frontdoor-${process.pid}`));
  const service = await startService({
    DATABASE_URL: await server.url('timescope_bench_frontdoor'),
    JOBS_ENABLED: 'false',
    COLLECTOR_ENABLED: 'false',
  });
  const key = authHeaders();
  const json = { 'content-type': 'application/json' };
  const hugeBody = Buffer.from(
    JSON.stringify({ source: 's', metrics: [{ name: 'pad', value: 1, tags: { pad: 'x'.repeat(1000) } }] }).padEnd(
      9_500_000,
      ' ',
    ),
  );
  const manyTags = Buffer.from(
    JSON.stringify({
      source: 's',
      metrics: [
        { name: 'm', value: 1, tags: Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v'])) },
      ],
    }),
  );
  const manyFilters = Buffer.from(
    JSON.stringify({ queries: [{ metric: 'm', tags: { host: Array.from({ length: 100_000 }, (_, i) => `h${i}`) } }] }),
  );
  const loads: Array<{ name: string; run?: () => Promise<number> }> = [
    { name: 'quiet (baseline)' },
    { name: '9.5 MB bodies, no key', run: () => send(`${service.url}/api/v1/metrics`, 'POST', hugeBody, json) },
    {
      name: '9.5 MB bodies, ingest key',
      run: () => send(`${service.url}/api/v1/metrics`, 'POST', hugeBody, { ...json, ...key }),
    },
    {
      name: 'a point with 100,000 tags',
      run: () => send(`${service.url}/api/v1/metrics`, 'POST', manyTags, { ...json, ...key }),
    },
    {
      name: 'a query with 100,000 tag filters',
      run: () => send(`${service.url}/api/v1/metrics/query/multi`, 'POST', manyFilters, { ...json, ...key }),
    },
    {
      name: 'wrong keys (brute force)',
      run: () =>
        send(`${service.url}/api/v1/metrics/names`, 'GET', undefined, {
          authorization: `Bearer tsk_${'x'.repeat(43)}`,
        }),
    },
  ];
  const rows: Array<Record<string, string | number>> = [];
  try {
    for (const load of loads) {
      let stop = false;
      const statuses = new Map<number, number>();
      const workers = load.run
        ? Array.from({ length: CLIENTS }, async () => {
            while (!stop) {
              const s = await load.run!();
              statuses.set(s, (statuses.get(s) ?? 0) + 1);
            }
          })
        : [];
      await sleep(300); // the load under way
      const probe: number[] = [];
      const end = Date.now() + SECONDS * 1000;
      while (Date.now() < end) {
        const t0 = performance.now();
        const s = await send(`${service.url}/health/live`, 'GET', undefined, {});
        if (s !== 200) throw new Error(`/health/live answered ${s}`);
        probe.push(performance.now() - t0);
        await sleep(20);
      }
      stop = true;
      await Promise.all(workers);
      rows.push({
        load: load.name,
        'requests (status×n)': [...statuses].map(([s, n]) => `${s}×${n}`).join(' ') || '-',
        'health p50 ms': percentile(probe, 0.5),
        'health p99 ms': percentile(probe, 0.99),
        'health max ms': Math.max(...probe),
      });
    }
    console.log(
      `service on ${service.url}; ${CLIENTS} clients per load, ${SECONDS} s each; /health/live probed every 20 ms on a new connection`,
    );
    table(rows);
  } finally {
    await service.stop();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
