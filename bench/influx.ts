import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/database/embedded.js';
import { sleep } from './lib.js';

/**
 * InfluxDB 1.x as a peer in a benchmark: its own influxd (Debian's /usr/bin/influxd, or
 * INFLUXD) on free ports with its data in a temporary directory, deleted on stop. Writes go over
 * its HTTP line protocol and queries over its HTTP InfluxQL endpoint, as a client would use them.
 */
export interface Influx {
  url: string;
  /** POST /write of line-protocol text (millisecond timestamps); throws unless 204. */
  write(lines: string): Promise<void>;
  /** GET /query (epoch ms times); the first statement's first series' rows, or [] when empty. */
  query(q: string): Promise<Array<Array<number | null>>>;
  stop(): Promise<void>;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function call(url: string, method: 'GET' | 'POST', body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function startInflux(database = 'bench'): Promise<Influx> {
  const dir = mkdtempSync(join(tmpdir(), 'timescope-influx-'));
  const [httpPort, rpcPort] = [await freePort(), await freePort()];
  const config = join(dir, 'influxdb.conf');
  writeFileSync(
    config,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[retention]
  enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
`,
  );
  const child: ChildProcess = spawn(process.env.INFLUXD ?? '/usr/bin/influxd', ['-config', config], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stopNow = () => child.kill('SIGKILL');
  process.once('exit', stopNow);
  const url = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`influxd exited with ${child.exitCode}`);
    const ok = await call(`${url}/ping`, 'GET').then(
      (r) => r.status === 204,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error('influxd did not answer /ping');
    await sleep(200);
  }
  const q = (s: string) => `${url}/query?db=${database}&epoch=ms&q=${encodeURIComponent(s)}`;
  const created = await call(`${url}/query?q=${encodeURIComponent(`CREATE DATABASE ${database}`)}`, 'POST');
  if (created.status !== 200) throw new Error(`influx CREATE DATABASE: ${created.body}`);
  return {
    url,
    write: async (lines) => {
      const r = await call(`${url}/write?db=${database}&precision=ms`, 'POST', lines);
      if (r.status !== 204) throw new Error(`influx write answered ${r.status}: ${r.body.slice(0, 300)}`);
    },
    query: async (s) => {
      const r = await call(q(s), 'GET');
      if (r.status !== 200) throw new Error(`influx query answered ${r.status}: ${r.body.slice(0, 300)}`);
      const json = JSON.parse(r.body) as {
        results: Array<{ error?: string; series?: Array<{ values: Array<Array<number | null>> }> }>;
      };
      const res = json.results[0];
      if (res.error) throw new Error(`influx query: ${res.error}`);
      return res.series?.[0]?.values ?? [];
    },
    stop: async () => {
      process.removeListener('exit', stopNow);
      await new Promise<void>((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
      });
      agent.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
