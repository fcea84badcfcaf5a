import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ensureDatabase, freePort, startEmbeddedPostgres } from '../src/database/embedded.js';

/** Shared pieces of the benchmarks: a database server, the service as a child process, HTTP, statistics. */

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export const flag = (name: string) => process.argv.includes(`--${name}`);
/** `--name N` or `--name=N` (the form that passes through `make bench BENCH_ARGS=…`). */
export function option(name: string, fallback: number): number {
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return Number(eq.slice(name.length + 3));
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback;
}

/** Settings as in ../shared/notes/performance.md: durable (fsync, synchronous_commit on), JIT off. */
const SERVER_SETTINGS = {
  shared_buffers: '2GB',
  max_wal_size: '8GB',
  work_mem: '64MB',
  checkpoint_timeout: '30min',
  jit: 'off',
};

export interface BenchServer {
  /** Connection string to `database` on the server (created if missing). */
  url(database: string): Promise<string>;
  describe: string;
  stop(): Promise<void>;
}

/**
 * BENCH_DATABASE_URL (a server we may create databases on), or an embedded PostgreSQL 17 in
 * `dataDir` (kept between runs when given, so a large dataset is loaded once).
 */
export async function benchServer(dataDir?: string): Promise<BenchServer> {
  const external = process.env.BENCH_DATABASE_URL;
  const withDb = (base: string, db: string) => {
    const u = new URL(base);
    u.pathname = `/${db}`;
    return u.toString();
  };
  if (external) {
    return {
      describe: `BENCH_DATABASE_URL (${new URL(external).host})`,
      url: async (db) => {
        await ensureDatabase(withDb(external, 'postgres'), db);
        return withDb(external, db);
      },
      stop: async () => {},
    };
  }
  const port = await freePort();
  const server = await startEmbeddedPostgres({
    dataDir: dataDir ?? join(tmpdir(), `timescope-bench-${process.pid}`),
    port,
    database: 'postgres',
    settings: SERVER_SETTINGS,
  });
  // The server runs in a session of its own: a Ctrl-C or a benchmark that throws must not leave it running.
  process.once('exit', () => server.stopNow());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  return {
    describe: `embedded PostgreSQL 17 on port ${port} (${Object.entries(SERVER_SETTINGS)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}, fsync and synchronous_commit on)`,
    url: async (db) => {
      await ensureDatabase(server.url, db);
      return withDb(server.url, db);
    },
    stop: () => server.stop(),
  };
}

export interface Service {
  url: string;
  pid: number;
  rssMb(): number;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** The bearer header the benchmarks send (the service requires keys on DATABASE_URL, as in production). */
let authorization: string | undefined;
export const authHeaders = (): Record<string, string> => (authorization ? { authorization } : {});

/**
 * An admin key without rate limits, made with the `make key` CLI on the service's database, so
 * the benchmarks pay for authentication as every client does, but are not throttled.
 */
function benchKey(env: Record<string, string>): string {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist/src/cli/key.js'),
      'create',
      '--name',
      `bench-${process.pid}-${Date.now()}`,
      '--scopes',
      'admin',
      '--rate-limits',
      'ingest=0,query=0,admin=0,stream=0',
    ],
    { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`could not create a benchmark key: ${r.stderr}`);
  return r.stdout.trim();
}

/** Starts `node dist/src/main.js` with `env` and waits until it is ready. */
export async function startService(env: Record<string, string>): Promise<Service> {
  if (env.DATABASE_URL && env.AUTH !== 'off') authorization = `Bearer ${benchKey(env)}`;
  const port = await freePort();
  // BENCH_NODE_ARGS: extra node flags for the service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist/src/main.js')], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/health/ready`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error('service did not become ready');
    await sleep(200);
  }
  const pid = child.pid!;
  return {
    url,
    pid,
    rssMb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
    cpuSeconds: () => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
    },
    stop: () =>
      new Promise((res) => {
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** A POST or GET over a keep-alive connection; resolves with status and body. */
export function request(url: string, method: 'GET' | 'POST', body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolveReq, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: {
          ...authHeaders(),
          ...(body ? { 'content-type': 'application/json', 'content-length': body.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolveReq({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How busy the whole machine was (all its CPUs, every process) from now until the returned function
 * is called: 0-1, from /proc/stat (idle and iowait count as not busy); NaN where /proc is missing.
 */
export function machineBusy(): () => number {
  const read = (): number[] | undefined => {
    try {
      return readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    } catch {
      return undefined;
    }
  };
  const before = read();
  return () => {
    const after = read();
    if (!before || !after) return NaN;
    const d = after.map((v, i) => v - before[i]);
    // user nice system idle iowait irq softirq steal; guest time (the fields after) is in user already
    const total = d.slice(0, 8).reduce((a, b) => a + b, 0);
    return total > 0 ? 1 - (d[3] + d[4]) / total : NaN;
  };
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const i = (s.length - 1) * p;
  const lo = Math.floor(i),
    hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}
export const median = (values: number[]) => percentile(values, 0.5);

/**
 * A 90% bootstrap interval for median(a) / median(b), where a[i] and b[i] were measured in the same
 * round: rounds are resampled with replacement (a fixed seed, so the same samples print the same
 * interval). A p50 of 10 or 30 rounds moves from run to run; the interval says how far.
 */
export function ratioInterval(a: number[], b: number[], resamples = 2000): [number, number] {
  const n = Math.min(a.length, b.length);
  if (n === 0) return [NaN, NaN];
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const ratios: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const xa: number[] = [],
      xb: number[] = [];
    for (let i = 0; i < n; i++) {
      const k = Math.floor(next() * n);
      xa.push(a[k]);
      xb.push(b[k]);
    }
    ratios.push(median(xa) / median(xb));
  }
  return [percentile(ratios, 0.05), percentile(ratios, 0.95)];
}

/** Prints rows as an aligned table. */
export function table(rows: Array<Record<string, string | number>>): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const cell = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(line(cols));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}
