import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createApp } from '../src/app.factory.js';
import { loadConfig } from '../src/config/config.js';
import { startEmbeddedPostgres } from '../src/database/embedded.js';

export interface BenchApp {
  app: NestFastifyApplication;
  /** `http://127.0.0.1:<port>`: benchmarks go through real HTTP. */
  url: string;
  close(): Promise<void>;
}

/**
 * The real service on a fresh database, listening on a random port. The database is created on
 * BENCH_DATABASE_URL (an admin connection that may create databases) or, without it, on an
 * embedded PostgreSQL started in a temporary directory; both are removed at the end.
 */
export async function startBenchApp(env: Record<string, string> = {}): Promise<BenchApp> {
  let admin = process.env.BENCH_DATABASE_URL;
  let stopServer = async () => {};
  if (!admin) {
    const port = 55_000 + Math.floor(Math.random() * 5_000);
    const server = await startEmbeddedPostgres({ dataDir: join(tmpdir(), `timescope-bench-${process.pid}`), port, database: 'postgres', settings: { fsync: 'off' } });
    admin = server.url;
    stopServer = () => server.stop();
  }
  const name = `timescope_bench_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const dbUrl = new URL(admin);
  dbUrl.pathname = `/${name}`;
  const config = loadConfig({ DATABASE_URL: dbUrl.toString(), JOBS_ENABLED: 'false', LOG_LEVEL: 'warn', METRICS_RETENTION_DAYS: '0', EXPORT_DIR: join(tmpdir(), `timescope-bench-exports-${process.pid}`), ...env });
  const app = await createApp(config, false);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.getHttpServer().address() as { port: number };
  return {
    app,
    url: `http://127.0.0.1:${addr.port}`,
    async close() {
      await app.close();
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
      await stopServer();
    },
  };
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json };
}
