import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { createApp } from '../../src/app.factory.js';
import { ApiKeysService } from '../../src/auth/api-keys.service.js';
import { loadConfig } from '../../src/config/config.js';
import { Database } from '../../src/database/database.js';
import { createTestDatabase, TestDatabase, TestFlavour } from './databases.js';
import { FaultProxy } from './fault-proxy.js';

export interface InjectResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any;
}

export interface TestApp {
  app: NestFastifyApplication;
  database: TestDatabase;
  /** Present when started with `{ proxy: true }`: the app reaches the database through it. */
  proxy?: FaultProxy;
  /** The app's own read pool, for arranging and checking data (PGlite serves one connection at a time). */
  sql: pg.Pool;
  /** An admin API key, sent by `request` unless the headers name their own `authorization` ('' for none). Undefined with AUTH=off. */
  adminKey?: string;
  /** `{authorization: 'Bearer <admin key>'}` for real HTTP clients (fetch, WebSocket); empty with AUTH=off. */
  authHeaders: Record<string, string>;
  /** Creates an API key with these scopes and returns it. */
  key(scopes: string[], name?: string, extra?: Record<string, unknown>): Promise<string>;
  request(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<InjectResult>;
  get(url: string): Promise<InjectResult>;
  post(url: string, body?: unknown, headers?: Record<string, string>): Promise<InjectResult>;
  runJob(name: string): Promise<any>;
  /** Serves the app over real HTTP on a free loopback port (the first call listens) and returns the port. */
  listen(): Promise<number>;
  close(): Promise<void>;
}

/**
 * The real application (same factory as main.ts) on a fresh database of the given flavour: a copy
 * of the run's migrated template, or with `emptyDatabase` an empty one that the app migrates.
 * Scheduled jobs are off unless asked for: tests trigger them, so nothing runs behind their back.
 */
export async function startApp(
  flavour: TestFlavour,
  env: Record<string, string> = {},
  opts: { proxy?: boolean; emptyDatabase?: boolean } = {},
): Promise<TestApp> {
  const database = await createTestDatabase(flavour, { empty: opts.emptyDatabase });
  let proxy: FaultProxy | undefined;
  let url = database.url;
  if (opts.proxy) {
    const u = new URL(database.url);
    proxy = new FaultProxy(u.hostname, Number(u.port));
    await proxy.start();
    url = proxy.wrap(database.url);
  }
  // Keys are required as in production (AUTH=auto with DATABASE_URL); rate limits are tested on their own.
  const config = loadConfig({
    DATABASE_URL: url,
    JOBS_ENABLED: 'false',
    COLLECTOR_ENABLED: 'false',
    LOG_LEVEL: 'error',
    AUTH: 'on',
    RATE_LIMIT_ENABLED: 'false',
    ...env,
  });
  let app: NestFastifyApplication;
  try {
    app = await createApp(config, false);
  } catch (err) {
    await proxy?.stop();
    await database.drop();
    throw err;
  }
  const sql = app.get(Database).readPool;
  const keys = app.get(ApiKeysService);
  let n = 0;
  const key = async (scopes: string[], name = `test-key-${++n}`, extra: Record<string, unknown> = {}) =>
    (await keys.create({ name, scopes, ...extra }, 'test')).key;
  const adminKey = config.auth.enabled ? await key(['admin'], 'test-admin') : undefined;
  const authHeaders: Record<string, string> = adminKey ? { authorization: `Bearer ${adminKey}` } : {};
  const request = async (
    method: string,
    url: string,
    body?: unknown,
    given: Record<string, string> = {},
  ): Promise<InjectResult> => {
    const headers = 'authorization' in given ? { ...given } : { ...authHeaders, ...given };
    if (headers.authorization === '') delete headers.authorization;
    const res = await app
      .getHttpAdapter()
      .getInstance()
      .inject({
        method: method as 'GET',
        url,
        headers:
          body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)
            ? { 'content-type': 'application/json', ...headers }
            : headers,
        payload:
          body === undefined
            ? undefined
            : typeof body === 'string' || Buffer.isBuffer(body)
              ? body
              : JSON.stringify(body),
      });
    let json: unknown;
    try {
      json = JSON.parse(res.body);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, headers: res.headers as InjectResult['headers'], body: res.body, json };
  };
  return {
    app,
    database,
    proxy,
    sql,
    adminKey,
    authHeaders,
    key,
    request,
    get: (url) => request('GET', url),
    post: (url, body, headers) => request('POST', url, body, headers),
    async runJob(name: string) {
      const r = await request('POST', `/api/v1/system/jobs/${name}/run`);
      if (r.status !== 200 || r.json.outcome !== 'ok') throw new Error(`job ${name}: ${r.status} ${r.body}`);
      return r.json;
    },
    async listen() {
      if (!app.getHttpServer().listening) await app.listen({ port: 0, host: '127.0.0.1' });
      return (app.getHttpServer().address() as AddressInfo).port;
    },
    async close() {
      proxy?.restore();
      await app.close();
      await proxy?.stop();
      await database.drop();
    },
  };
}
