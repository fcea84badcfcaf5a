import { ChildProcess, fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createApp } from '../src/app.factory.js';
import { ApiKeysService } from '../src/auth/api-keys.service.js';
import { loadConfig } from '../src/config/config.js';
import type { CommitListener } from '../src/storage/point-writer.js';
import { PointWriter } from '../src/storage/point-writer.js';
import { StreamHub } from '../src/streaming/stream-hub.js';
import { benchServer } from './lib.js';

/**
 * Live streams under load (issue 5): WS_CLIENTS WebSocket subscribers and SSE_CLIENTS SSE
 * subscribers on loopback while POINTS_PER_SECOND points are ingested over HTTP; latency from
 * commit to delivery at the client, and the server's memory over the run.
 *
 *   node dist/bench/streams.bench.js [--quick] [--seconds=30] [--ws=1000] [--sse=100] [--rate=10000]
 *
 * Processes: this one runs Timescope in-process (the commit stamps below need its writer) and an
 * embedded PostgreSQL unless BENCH_DATABASE_URL is set (bench/lib.ts); a child runs every client,
 * another the ingest load. The server stamps each request's commit
 * (a commit listener ahead of the stream hub's) and sends it to the clients' process, which
 * subtracts it from the time each message arrived (both clocks are this machine's).
 * Series: 10 metrics × 1,000 sources, one point each per second; every WebSocket client subscribes
 * to one metric on 10 sources (10 messages/s) and each series is watched by one WebSocket client;
 * every SSE client streams one metric of 10 sources live (10 messages/s).
 */

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .map((a) => a.replace(/^--/, '').split('='))
    .map(([k, v]) => [k, v ?? 'true']),
);
const quick = args.quick === 'true';
const role = args.role ?? 'server';
const METRICS = 10;
const SOURCES = 1_000;
const WS_CLIENTS = Number(args.ws ?? (quick ? 200 : 1_000));
const SSE_CLIENTS = Number(args.sse ?? (quick ? 20 : 100));
const RATE = Number(args.rate ?? (quick ? 2_000 : 10_000));
const SECONDS = Number(args.seconds ?? (quick ? 8 : 30));
const WARMUP_SECONDS = quick ? 3 : 5;
const REQUESTS_PER_SECOND = 10;

const now = () => performance.timeOrigin + performance.now();
const metricName = (m: number) => `bench_m${m}`;
const sourceName = (s: number) => `host-${String(s).padStart(4, '0')}`;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---------------------------------------------------------------------------------------------
// The clients' process: WebSocket and SSE subscribers measuring commit → delivery.
async function clients(port: number): Promise<void> {
  const commits = new Map<number, number>(); // request timestamp → commit time
  const waiting = new Map<number, number[]>(); // arrivals whose commit time is not known yet
  let measuring = false;
  const latencies: number[] = [];
  const counts = { ws: 0, sse: 0, skippedNotices: 0, closed: 0 };
  const parsedTs = new Map<string, number>();
  const record = (ts: string, arrived: number) => {
    let key = parsedTs.get(ts);
    if (key === undefined) {
      if (parsedTs.size > 10_000) parsedTs.clear();
      parsedTs.set(ts, (key = Date.parse(ts)));
    }
    const c = commits.get(key);
    if (c !== undefined) {
      if (measuring) latencies.push(arrived - c);
    } else {
      let w = waiting.get(key);
      if (!w) waiting.set(key, (w = []));
      w.push(arrived);
    }
  };
  process.on('message', (m: { type: string; key?: number; commit?: number }) => {
    if (m.type === 'commit') {
      commits.set(m.key!, m.commit!);
      const w = waiting.get(m.key!);
      if (w) {
        if (measuring) for (const a of w) latencies.push(a - m.commit!);
        waiting.delete(m.key!);
      }
      if (commits.size > 100_000) commits.delete(commits.keys().next().value!);
    } else if (m.type === 'measure') {
      measuring = true;
      latencies.length = 0;
      counts.ws = counts.sse = 0;
    } else if (m.type === 'report') {
      measuring = false;
      const sorted = Float64Array.from(latencies).sort();
      process.send!({
        type: 'report',
        messages: sorted.length,
        ws: counts.ws,
        sse: counts.sse,
        skippedNotices: counts.skippedNotices,
        closed: counts.closed,
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        p999: percentile(sorted, 99.9),
        max: sorted[sorted.length - 1],
      });
    }
  });

  const open: Array<Promise<void>> = [];
  const sockets: WebSocket[] = [];
  for (let i = 0; i < WS_CLIENTS; i++) {
    open.push(
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/metrics`, { headers: auth() });
        sockets.push(ws);
        ws.on('open', () => {
          const block = Math.floor(i / METRICS) % (SOURCES / 10);
          ws.send(
            JSON.stringify({
              action: 'subscribe',
              metrics: [metricName(i % METRICS)],
              sources: Array.from({ length: 10 }, (_, j) => sourceName(block * 10 + j)),
            }),
          );
        });
        ws.on('message', (data) => {
          const arrived = now();
          const m = JSON.parse(data.toString());
          if (m.type === 'metric_update') {
            counts.ws++;
            record(m.timestamp, arrived);
          } else if (m.type === 'subscribed') resolve();
          else if (m.type === 'updates_skipped') counts.skippedNotices++;
        });
        ws.on('close', () => counts.closed++);
        ws.on('error', reject);
      }),
    );
    if (open.length % 100 === 0) await Promise.all(open.slice(-100));
  }
  await Promise.all(open);
  const aborts: AbortController[] = [];
  for (let j = 0; j < SSE_CLIENTS; j++) {
    const abort = new AbortController();
    aborts.push(abort);
    const block = (j * 7) % (SOURCES / 10);
    const url = `http://127.0.0.1:${port}/api/v1/metrics/stream?metrics=${metricName(j % METRICS)}&sources=${Array.from({ length: 10 }, (_, k) => sourceName(block * 10 + k)).join(',')}`;
    const res = await fetch(url, { signal: abort.signal, headers: auth() });
    if (res.status !== 200) throw new Error(`SSE ${res.status}: ${await res.text()}`);
    void (async () => {
      const decoder = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          const arrived = now();
          buf += decoder.decode(chunk, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const d = block.indexOf('data: ');
            if (d < 0 || block.startsWith('event:')) continue;
            const m = JSON.parse(block.slice(d + 6));
            counts.sse++;
            record(m.timestamp, arrived);
          }
        }
      } catch {
        /* aborted at the end */
      }
    })();
  }
  process.send!({ type: 'ready' });
  process.on('disconnect', () => {
    for (const s of sockets) s.terminate();
    for (const a of aborts) a.abort();
    process.exit(0);
  });
}

// ---------------------------------------------------------------------------------------------
// The ingest process: REQUESTS_PER_SECOND requests a second, RATE points a second in all.
async function ingest(port: number): Promise<void> {
  const perRequest = RATE / REQUESTS_PER_SECOND;
  const sourcesPerRequest = Math.max(1, Math.round(perRequest / METRICS));
  const step = 1000 / REQUESTS_PER_SECOND;
  const start = Math.ceil(Date.now() / step) * step;
  let k = 0,
    inFlight = 0,
    sent = 0,
    failed = 0,
    points = 0;
  const latencies: number[] = [];
  const tick = () => {
    const ts = start + k * step;
    const first = (k * sourcesPerRequest) % SOURCES;
    k++;
    if (inFlight >= 20) return void failed++;
    const body = {
      batches: Array.from({ length: sourcesPerRequest }, (_, s) => ({
        source: sourceName((first + s) % SOURCES),
        timestamp: new Date(ts).toISOString(),
        metrics: Array.from({ length: METRICS }, (_, m) => ({
          name: metricName(m),
          value: Math.round(Math.random() * 10_000) / 100,
        })),
      })),
    };
    inFlight++;
    const t0 = now();
    fetch(`http://127.0.0.1:${port}/api/v1/metrics/batch`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
      .then(async (r) => {
        await r.arrayBuffer();
        if (r.status === 200) {
          sent++;
          points += sourcesPerRequest * METRICS;
          latencies.push(now() - t0);
        } else failed++;
      })
      .catch(() => failed++)
      .finally(() => inFlight--);
  };
  const loop = () => {
    const due = start + k * step;
    if (Date.now() >= due) tick();
    setTimeout(loop, Math.max(0, start + k * step - Date.now()));
  };
  setTimeout(loop, Math.max(0, start - Date.now()));
  process.on('message', (m: { type: string }) => {
    if (m.type === 'measure') {
      sent = failed = points = 0;
      latencies.length = 0;
    } else if (m.type === 'report') {
      const sorted = Float64Array.from(latencies).sort();
      process.send!({
        type: 'report',
        requests: sent,
        failed,
        points,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
      });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'ready' });
}

/** The bearer header the forked clients send (set by the server process before it forks them). */
const auth = (): Record<string, string> => (process.env.BENCH_AUTH ? { authorization: process.env.BENCH_AUTH } : {});

// ---------------------------------------------------------------------------------------------
function child(kind: 'clients' | 'ingest', port: number): ChildProcess {
  return fork(fileURLToPath(import.meta.url), [`--role=${kind}`, `--port=${port}`, ...process.argv.slice(2)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

const once = <T>(c: ChildProcess, type: string) =>
  new Promise<T>((resolve, reject) => {
    const on = (m: { type: string }) => {
      if (m.type === type) {
        c.off('message', on);
        resolve(m as T);
      }
    };
    c.on('message', on);
    c.once('exit', (code) => reject(new Error(`${type}: child exited with ${code}`)));
  });

async function server(): Promise<void> {
  const dir = join(tmpdir(), `timescope-bench-streams-${process.pid}`);
  try {
    const db = await benchServer(dir);
    console.log(`database: ${db.describe}`);
    try {
      await measure(await db.url('bench_streams'));
    } finally {
      await db.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(url: string): Promise<void> {
  // The host collector off: only the ingest load below writes points.
  const config = loadConfig({
    DATABASE_URL: url,
    JOBS_ENABLED: 'false',
    COLLECTOR_ENABLED: 'false',
    LOG_LEVEL: 'warn',
    STREAM_MAX_CONNECTIONS: String(WS_CLIENTS + SSE_CLIENTS + 100),
  });
  const app = await createApp(config, false);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const hub = app.get(StreamHub);
  // Keys are required as in production; the forked clients inherit this one (no rate limits: it is a load test).
  const key = await app
    .get(ApiKeysService)
    .create({ name: 'bench-streams', scopes: ['admin'], rate_limits: { ingest: 0, query: 0, stream: 0 } }, 'bench');
  process.env.BENCH_AUTH = `Bearer ${key.key}`;

  const clientsProc = child('clients', port);
  // The commit stamp runs before the stream hub's listener, so fan-out time counts as latency.
  const writer = app.get(PointWriter);
  const listeners = (writer as unknown as { listeners: Set<CommitListener> }).listeners;
  const others = [...listeners];
  listeners.clear();
  writer.onCommit((batch) => {
    const c = now();
    commitOf.set(batch.times[0], c);
    if (commitOf.size > 10_000) commitOf.delete(commitOf.keys().next().value!);
    if (clientsProc.connected) clientsProc.send({ type: 'commit', key: batch.times[0], commit: c });
  });
  for (const l of others) listeners.add(l);
  // And one after it: commit → handed to every socket (the server's own share of the latency).
  const handed: number[] = [];
  let stamping = false;
  writer.onCommit((batch) => {
    if (stamping) handed.push(now() - commitOf.get(batch.times[0])!);
  });
  const commitOf = new Map<number, number>();

  const t0 = now();
  await once(clientsProc, 'ready');
  const setup = (now() - t0) / 1000;
  const ingestProc = child('ingest', port);
  await once(ingestProc, 'ready');
  console.log(
    `${WS_CLIENTS} WebSocket + ${SSE_CLIENTS} SSE clients subscribed in ${setup.toFixed(1)} s; ingesting ${RATE} points/s; warm-up ${WARMUP_SECONDS} s, then ${SECONDS} s measured`,
  );
  await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));

  const loop = monitorEventLoopDelay({ resolution: 10 });
  // Heap after a full GC only at both ends (a forced GC stalls the loop); plain samples between.
  const mem = (gc: boolean) => {
    if (gc) global.gc?.();
    const m = process.memoryUsage();
    return { heap: m.heapUsed / 2 ** 20, rss: m.rss / 2 ** 20 };
  };
  const start = mem(true);
  const samples: Array<{ heap: number; rss: number }> = [];
  const before = { ...hub.stats };
  const cpu0 = process.cpuUsage();
  for (const c of [clientsProc, ingestProc]) c.send({ type: 'measure' });
  loop.enable();
  stamping = true;
  const tm = now();
  const sampler = setInterval(() => samples.push(mem(false)), 1_000);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  clearInterval(sampler);
  stamping = false;
  loop.disable();
  const cpu = process.cpuUsage(cpu0);
  const elapsed = (now() - tm) / 1000;
  const [lat, ing] = await Promise.all([
    once<Record<string, number>>(clientsProc, 'report'),
    once<Record<string, number>>(ingestProc, 'report'),
    clientsProc.send({ type: 'report' }),
    ingestProc.send({ type: 'report' }),
  ]);

  const end = mem(true);
  const handedSorted = Float64Array.from(handed).sort();
  const f = (x: number) => x.toFixed(1);
  console.log(
    `ingest: ${Math.round(ing.points / elapsed)} points/s committed (${ing.requests} requests, ${ing.failed} failed or not sent; request p50 ${f(ing.p50)} ms, p99 ${f(ing.p99)} ms)`,
  );
  console.log(
    `delivered: ${lat.messages} messages in ${f(elapsed)} s (${Math.round(lat.ws / elapsed)}/s WebSocket, ${Math.round(lat.sse / elapsed)}/s SSE); skipped notices ${lat.skippedNotices}, clients closed ${lat.closed}, cut off ${hub.stats.cutOff - before.cutOff}`,
  );
  console.log(
    `commit → delivery: p50 ${f(lat.p50)} ms, p90 ${f(lat.p90)} ms, p99 ${f(lat.p99)} ms, p99.9 ${f(lat.p999)} ms, max ${f(lat.max)} ms  (target: p99 < 100 ms)`,
  );
  console.log(
    `commit → handed to every socket (server side): p50 ${f(percentile(handedSorted, 50))} ms, p99 ${f(percentile(handedSorted, 99))} ms, max ${f(handedSorted[handedSorted.length - 1])} ms`,
  );
  console.log(
    `server: fan-out took ${f((hub.stats.fanOutMs - before.fanOutMs) / elapsed)} ms per second (wall time); process CPU ${f(((cpu.user + cpu.system) / 1e6 / elapsed) * 100)} % of one core; event loop delay p99 ${f(loop.percentile(99) / 1e6)} ms`,
  );
  console.log(
    `server memory: heap after GC ${f(start.heap)} MiB at start, ${f(end.heap)} MiB at end (${f(end.heap - start.heap)} MiB); heap between ${f(Math.min(...samples.map((x) => x.heap)))}-${f(Math.max(...samples.map((x) => x.heap)))} MiB; RSS ${f(start.rss)} → ${f(end.rss)} MiB (max ${f(Math.max(...samples.map((x) => x.rss)))})`,
  );
  const ok = lat.p99 < 100;
  console.log(ok ? 'OK: p99 under 100 ms' : 'MISSED: p99 at or over 100 ms');

  clientsProc.disconnect();
  ingestProc.disconnect();
  await app.close();
}

const port = Number(args.port);
if (role === 'clients') await clients(port);
else if (role === 'ingest') await ingest(port);
else
  await server().catch((err) => {
    console.error(err);
    process.exit(1);
  });
