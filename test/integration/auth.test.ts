import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { FrontDoor } from '../../src/auth/front-door.js';
import { grants, Scope, SCOPES } from '../../src/auth/keys.js';
import { startApp, TestApp } from '../support/app.js';
import { StreamHub } from '../../src/streaming/stream-hub.js';
import { sseClient, wsClient } from '../support/stream-clients.js';
import { describeEachFlavour } from '../support/suite.js';

/** A raw request through the real fastify app, with a chosen client address. */
async function inject(
  t: TestApp,
  opts: { method?: string; url: string; headers?: Record<string, string>; payload?: string; ip?: string },
) {
  const res = await t.app
    .getHttpAdapter()
    .getInstance()
    .inject({
      method: (opts.method ?? 'GET') as 'GET',
      url: opts.url,
      headers: opts.headers ?? {},
      payload: opts.payload,
      remoteAddress: opts.ip ?? '127.0.0.1',
    });
  let json: any;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, json, body: res.body };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/**
 * Writes `request` on a new connection and resolves with what comes back: all of it once the
 * server closes, or what came within 500 ms of the first bytes (a socket that was upgraded stays open).
 */
function rawExchange(hostPort: string, request: string): Promise<string> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve, reject) => {
    let got = '';
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const socket = connect(Number(port), host, () => socket.write(request));
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      got += c;
      timer ??= setTimeout(done, 500);
    });
    socket.on('end', done);
    socket.on('error', reject);
  });
}

/** A concrete URL for a route pattern: path parameters that match no stored object. */
const concrete = (url: string) =>
  url
    .replace(/:id\([^)]*\)/g, '999999')
    .replace(/:id/g, '999999')
    .replace(/:name/g, 'nothing-here')
    .replace(/:appId/g, 'app');

/** Opens a WebSocket; resolves with 'open' or the HTTP status the upgrade was refused with. */
function wsOutcome(url: string, headers: Record<string, string> = {}): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
  });
}

/** Opens a WebSocket that is to be refused: the upgrade's HTTP answer (status, headers, body). */
function wsRefusal(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.close();
      reject(new Error(`${url}: opened`));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.once('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
  });
}

describeEachFlavour('front door: API keys and scopes', (ctx) => {
  const keys = {} as Record<Scope, string>;
  before(async () => {
    for (const s of SCOPES) keys[s] = await ctx.t.key([s], `only-${s}`);
  });

  it('declares the access of every route, and answers each with 401 without a key, 403 without the scope, and lets the scope through', async () => {
    const routes = ctx.t.app.get(FrontDoor).routes.filter((r) => r.method !== 'HEAD');
    assert.ok(routes.length > 60, `${routes.length} routes`);
    const groups = new Map<string, number>();
    for (const r of routes) {
      const url = concrete(r.url);
      const body = r.method === 'POST' || r.method === 'PUT' ? '{}' : undefined;
      // A body of the route's first declared type (JSON unless it says otherwise: line protocol is text).
      const headers: Record<string, string> = body
        ? { 'content-type': r.access.contentTypes?.[0] ?? 'application/json' }
        : {};
      const label = `${r.method} ${r.url}`;
      if (r.access.access === 'public') {
        assert.notEqual((await inject(ctx.t, { method: r.method, url, headers, payload: body })).status, 401, label);
        continue;
      }
      groups.set(r.access.access, (groups.get(r.access.access) ?? 0) + 1);
      const none = await inject(ctx.t, { method: r.method, url, headers, payload: body });
      assert.equal(none.status, 401, label);
      assert.equal(none.json.error.code, 'UNAUTHORIZED', label);
      assert.match(String(none.headers['www-authenticate']), /^Bearer/, label);
      const forged = await inject(ctx.t, {
        method: r.method,
        url,
        headers: { ...headers, ...bearer(`tsk_${'A'.repeat(43)}`) },
        payload: body,
      });
      assert.equal(forged.status, 401, label);
      for (const scope of SCOPES) {
        const allowed = r.access.access === 'any' || grants([scope], r.access.access);
        // A stream that is let in would stay open: its admission is checked over a real socket below.
        if (allowed && r.access.rate === 'stream') continue;
        const res = await inject(ctx.t, {
          method: r.method,
          url,
          headers: { ...headers, ...bearer(keys[scope]) },
          payload: body,
        });
        if (allowed)
          assert.ok(
            res.status !== 401 && res.status !== 403,
            `${label} with a ${scope} key: ${res.status} ${res.body}`,
          );
        else {
          assert.equal(res.status, 403, `${label} with a ${scope} key: ${res.body}`);
          assert.equal(res.json.error.code, 'FORBIDDEN');
          assert.equal(res.json.error.details.required_scope, r.access.access);
        }
      }
    }
    // Every scope guards something.
    assert.ok(
      (groups.get('read') ?? 0) > 20 && (groups.get('ingest') ?? 0) >= 8 && (groups.get('admin') ?? 0) > 15,
      JSON.stringify([...groups]),
    );
  });

  it('keeps /health, /health/live, /health/ready and the API documents open', async () => {
    for (const url of ['/health', '/health/live', '/health/ready', '/swagger-ui/openapi.json']) {
      assert.equal((await inject(ctx.t, { url })).status, 200, url);
    }
    const doc = (await inject(ctx.t, { url: '/swagger-ui/openapi.json' })).json;
    assert.equal(doc.components.securitySchemes['api-key'].scheme, 'bearer');
    assert.deepEqual(doc.paths['/api/v1/metrics/query'].get.security, [{ 'api-key': [] }]);
  });

  it('shows webhook URLs in full to admin keys only: other keys see their scheme and host', async () => {
    const secretUrl = 'https://93.184.216.34/hook/T0/B0/s3cr3t?token=SUPERSECRET';
    const rule = await ctx.t.post('/api/v1/alert-rules', {
      name: 'url-redaction',
      type: 'threshold',
      metric: 'redaction_probe',
      condition: 'greater_than',
      threshold: 1,
      notify: { webhook: secretUrl },
    });
    assert.equal(rule.status, 201, rule.body);
    assert.equal(rule.json.notify.webhook, secretUrl);
    const pipeline = await ctx.t.post('/api/v1/pipelines', {
      name: 'url-redaction',
      pipeline: [{ operation: 'aggregate', params: { window: '5m', functions: ['avg'] } }],
      output: { destination: 'webhook', url: secretUrl },
      schedule: { every: '5m' },
    });
    assert.equal(pipeline.status, 201, pipeline.body);
    const alert = await ctx.t.post('/api/v1/alerts', { title: 'url redaction', message: 'm', severity: 2 });
    assert.equal(alert.status, 201, alert.body);
    const alertId = Number(String(alert.json.alert.id).replace(/^alt_/, ''));
    await ctx.t.sql.query(
      `INSERT INTO webhook_deliveries (subject, event, url, secret, payload, max_attempts, status)
       VALUES ($1, 'alert.triggered', $2, NULL, '{}', 1, 'failed')`,
      [`alert:${alertId}`, secretUrl],
    );
    const reads = [
      `/api/v1/alert-rules`,
      `/api/v1/alert-rules/${rule.json.id}`,
      `/api/v1/pipelines`,
      `/api/v1/pipelines/${pipeline.json.id}`,
      `/api/v1/alerts/${alert.json.alert.id}/notifications`,
    ];
    for (const path of reads) {
      const full = await ctx.t.request('GET', path, undefined, bearer(keys.admin));
      assert.equal(full.status, 200, `${path}: ${full.body}`);
      assert.ok(full.body.includes(secretUrl), `${path} with an admin key: the URL in full`);
      const shown = await ctx.t.request('GET', path, undefined, bearer(keys.read));
      assert.equal(shown.status, 200, `${path}: ${shown.body}`);
      assert.ok(!shown.body.includes('s3cr3t') && !shown.body.includes('SUPERSECRET'), `${path}: ${shown.body}`);
      assert.ok(shown.body.includes('"https://93.184.216.34/…"'), `${path}: ${shown.body}`);
    }
    // Nothing else in the answers changed.
    const mine = (await ctx.t.request('GET', `/api/v1/alert-rules/${rule.json.id}`, undefined, bearer(keys.read))).json;
    assert.equal(mine.name, 'url-redaction');
    assert.equal(mine.threshold, 1);
    await ctx.t.request('DELETE', `/api/v1/alert-rules/${rule.json.id}`);
    await ctx.t.request('DELETE', `/api/v1/pipelines/${pipeline.json.id}`);
  });

  it('creates a key shown once, stores only its hash, lists it without the secret, and revokes it at once', async () => {
    const created = await ctx.t.post('/api/v1/auth/keys', { name: 'collector-eu1', scopes: ['ingest', 'read'] });
    assert.equal(created.status, 201, created.body);
    const { key, id } = created.json;
    assert.match(key, /^tsk_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.json.prefix, key.slice(0, 12));
    assert.equal(created.json.created_by, 'test-admin');
    const stored = (await ctx.t.sql.query(`SELECT * FROM api_keys WHERE id = $1`, [id])).rows[0];
    assert.deepEqual(stored.hash, createHash('sha256').update(key).digest());
    assert.ok(!JSON.stringify(stored).includes(key.slice(4)), 'the key itself is not stored');

    const listed = await ctx.t.get('/api/v1/auth/keys');
    const mine = listed.json.keys.find((k: { id: number }) => k.id === id);
    assert.deepEqual(mine.scopes, ['ingest', 'read']);
    assert.ok(!('key' in mine) && !('hash' in mine) && !listed.body.includes(key));
    assert.equal((await ctx.t.get(`/api/v1/auth/keys/${id}`)).json.name, 'collector-eu1');

    const who = await ctx.t.request('GET', '/api/v1/auth/whoami', undefined, bearer(key));
    assert.deepEqual(who.json, { name: 'collector-eu1', key_id: id, scopes: ['ingest', 'read'] });
    const ingest = await ctx.t.request(
      'POST',
      '/api/v1/metrics',
      { source: 's', metrics: [{ name: 'auth_probe', value: 1 }] },
      bearer(key),
    );
    assert.equal(ingest.status, 200, ingest.body);

    assert.equal((await ctx.t.request('DELETE', `/api/v1/auth/keys/${id}`)).status, 204);
    const after = await ctx.t.request('GET', '/api/v1/auth/whoami', undefined, bearer(key));
    assert.equal(after.status, 401);
    assert.equal(after.json.error.message, 'Unknown, revoked or expired API key');
    assert.equal((await ctx.t.request('DELETE', `/api/v1/auth/keys/${id}`)).status, 404);
    const all = await ctx.t.get('/api/v1/auth/keys?include_revoked=true');
    assert.ok(all.json.keys.find((k: { id: number; revoked_at: string | null }) => k.id === id).revoked_at);
    assert.ok(!(await ctx.t.get('/api/v1/auth/keys')).json.keys.some((k: { id: number }) => k.id === id));
  });

  it('answers bad key requests with 400 naming the field, a taken name with 409, and never revokes the last admin key', async () => {
    const bad = async (body: unknown, field: string) => {
      const r = await ctx.t.post('/api/v1/auth/keys', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.details.field, field, r.body);
    };
    await bad({ scopes: ['read'] }, 'name');
    await bad({ name: 'x', scopes: [] }, 'scopes');
    await bad({ name: 'x', scopes: ['read', 'root'] }, 'scopes[1]');
    await bad({ name: 'x', scopes: ['read'], expires_at: '2020-01-01T00:00:00Z' }, 'expires_at');
    await bad({ name: 'x', scopes: ['read'], rate_limits: { ingest: -1 } }, 'rate_limits.ingest');
    await bad({ name: 'x', scopes: ['read'], owner: 'me' }, 'owner');
    assert.equal((await ctx.t.post('/api/v1/auth/keys', { name: 'only-read', scopes: ['read'] })).status, 409);

    // Revoke every admin key but the test's own: the last one is refused.
    const admins = (await ctx.t.get('/api/v1/auth/keys')).json.keys.filter(
      (k: { scopes: string[]; name: string }) => k.scopes.includes('admin') && k.name !== 'test-admin',
    );
    for (const k of admins) assert.equal((await ctx.t.request('DELETE', `/api/v1/auth/keys/${k.id}`)).status, 204);
    const self = (await ctx.t.get('/api/v1/auth/keys')).json.keys.find(
      (k: { name: string }) => k.name === 'test-admin',
    );
    const last = await ctx.t.request('DELETE', `/api/v1/auth/keys/${self.id}`);
    assert.equal(last.status, 409);
    assert.match(last.json.error.message, /last live admin key/);
  });

  it('refuses an expired key, a malformed Authorization header and a key in the query string outside streams', async () => {
    const key = await ctx.t.key(['read'], 'short-lived', { expires_at: new Date(Date.now() + 60_000).toISOString() });
    await ctx.t.sql.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'short-lived'`);
    const expired = await ctx.t.request('GET', '/api/v1/metrics/names', undefined, bearer(key));
    assert.equal(expired.status, 401);
    // A key in use is cached for AUTH_KEY_CACHE_SECONDS (10 s): what happens behind the API's back shows within that time.
    const fresh = await ctx.t.key(['read'], 'fresh');
    assert.equal((await ctx.t.request('GET', '/api/v1/metrics/names', undefined, bearer(fresh))).status, 200);
    await ctx.t.sql.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'fresh'`);
    assert.equal((await ctx.t.request('GET', '/api/v1/metrics/names', undefined, bearer(fresh))).status, 200);
    const basic = await ctx.t.request('GET', '/api/v1/metrics/names', undefined, {
      authorization: 'Basic dXNlcjpwYXNz',
    });
    assert.equal(basic.status, 401, 'a password that is not a key');
    const digest = await ctx.t.request('GET', '/api/v1/metrics/names', undefined, {
      authorization: 'Digest username="x"',
    });
    assert.equal(digest.status, 401);
    assert.match(digest.json.error.message, /Bearer/);
    // What InfluxDB and Prometheus clients send: Token <key>, or Basic with the key as the password.
    assert.equal(
      (await ctx.t.request('GET', '/api/v1/metrics/names', undefined, { authorization: `Token ${keys.read}` })).status,
      200,
    );
    const asBasic = `Basic ${Buffer.from(`prometheus:${keys.read}`).toString('base64')}`;
    assert.equal(
      (await ctx.t.request('GET', '/api/v1/metrics/names', undefined, { authorization: asBasic })).status,
      200,
    );
    assert.equal(
      (await ctx.t.request('GET', `/api/v1/metrics/names?access_token=${keys.read}`, undefined, { authorization: '' }))
        .status,
      401,
    );
  });

  it('takes only JSON bodies on POST, PUT and DELETE: a form or text body gets 415 before any handler, and a bodyless POST needs a key', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
      const r = await inject(ctx.t, {
        method: 'POST',
        url: '/api/v1/config',
        headers: { ...bearer(keys.admin), 'content-type': type },
        payload: 'a=1',
      });
      assert.equal(r.status, 415, type);
      assert.equal(r.json.error.code, 'UNSUPPORTED_MEDIA_TYPE');
      assert.equal(r.json.error.details.header, 'content-type');
    }
    const form = await inject(ctx.t, {
      method: 'PUT',
      url: '/api/v1/config',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'storage.retention_days=1',
    });
    assert.equal(form.status, 415);
    const bodyless = await inject(ctx.t, { method: 'POST', url: '/api/v1/system/jobs/retention/run' });
    assert.equal(bodyless.status, 401);
    assert.equal((await ctx.t.get('/api/v1/config')).json.storage.retention_days, 7);
  });

  describe('streams', () => {
    let base: string;
    before(async () => {
      base = `127.0.0.1:${await ctx.t.listen()}`;
    });

    it('admits a WebSocket with a read key in the header or ?access_token=, and refuses one without (401) or with an ingest key (403)', async () => {
      assert.equal(await wsOutcome(`ws://${base}/ws/metrics`), 401);
      assert.equal(await wsOutcome(`ws://${base}/ws/metrics?access_token=tsk_${'B'.repeat(43)}`), 401);
      assert.equal(await wsOutcome(`ws://${base}/ws/metrics`, bearer(keys.ingest)), 403);
      assert.equal(await wsOutcome(`ws://${base}/ws/metrics`, bearer(keys.read)), 'open');
      assert.equal(await wsOutcome(`ws://${base}/ws/metrics?access_token=${keys.read}`), 'open');
    });

    it('refuses a WebSocket upgrade with the JSON error envelope, not text/html', async () => {
      for (const [headers, status, code] of [
        [{}, 401, 'UNAUTHORIZED'],
        [bearer(`tsk_${'B'.repeat(43)}`), 401, 'UNAUTHORIZED'],
        [bearer(keys.ingest), 403, 'FORBIDDEN'],
      ] as const) {
        const r = await wsRefusal(`ws://${base}/ws/metrics`, headers);
        assert.equal(r.status, status);
        assert.match(String(r.headers['content-type']), /^application\/json/);
        assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
        const body = JSON.parse(r.body);
        assert.equal(body.error.code, code);
        assert.equal(typeof body.error.message, 'string');
        assert.equal(typeof body.error.timestamp, 'string');
        if (status === 401) assert.equal(r.headers['www-authenticate'], 'Bearer realm="timescope"');
        else assert.equal(body.error.details.required_scope, 'read');
      }
    });

    it('answers an upgrade to a path with no WebSocket endpoint 404 in the envelope once the key is valid (401 before)', async () => {
      const none = await wsRefusal(`ws://${base}/ws/nope`);
      assert.equal(none.status, 401);
      assert.equal(JSON.parse(none.body).error.code, 'UNAUTHORIZED');
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="timescope"');
      for (const [url, headers] of [
        [`ws://${base}/ws/nope`, bearer(keys.read)],
        [`ws://${base}/ws/metrics/extra?access_token=${keys.read}`, {}],
      ] as const) {
        const r = await wsRefusal(url, headers);
        assert.equal(r.status, 404);
        assert.match(String(r.headers['content-type']), /^application\/json/);
        assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
        const body = JSON.parse(r.body);
        assert.equal(body.error.code, 'RESOURCE_NOT_FOUND');
        assert.match(
          body.error.message,
          /No WebSocket endpoint at \/ws\/(nope|metrics\/extra); WebSocket streams are at \/ws\/metrics/,
        );
      }
    });

    it('routes an upgrade by its path whatever the Host header says, and answers a target that is no URL 400', async () => {
      const upgrade = (target: string, host: string) =>
        rawExchange(
          base,
          `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
            `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
            `Authorization: Bearer ${keys.read}\r\n\r\n`,
        );
      // Nest's listener built a URL from the Host header, and a malformed one made it write "HTTP/1.1 400" and the exception's text.
      assert.match(await upgrade('/ws/metrics', '[::'), /^HTTP\/1\.1 101 /);
      const bad = await upgrade('http://[x/ws/metrics', 'localhost');
      assert.match(bad, /^HTTP\/1\.1 400 Bad Request\r\n/);
      const body = JSON.parse(bad.slice(bad.indexOf('\r\n\r\n') + 4));
      assert.equal(body.error.code, 'INVALID_REQUEST');
      assert.equal(body.error.details.field, 'url');
    });

    it('closes the streams of a key revoked through the API at once, and of one revoked elsewhere or expired at the next key check', async () => {
      const port = Number(base.split(':')[1]);
      const idOf = async (name: string) =>
        Number((await ctx.t.sql.query(`SELECT id FROM api_keys WHERE name = $1`, [name])).rows[0].id);
      const within = <T>(p: Promise<T>, what: string) =>
        Promise.race([
          p,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: still open`)), 3_000)),
        ]);
      const open = async (key: string) => {
        const sse = await sseClient(`http://${base}/api/v1/metrics/stream`, bearer(key));
        assert.equal(sse.status, 200, sse.body);
        return { sse, ws: await wsClient(port, '/ws/metrics', bearer(key)) };
      };
      const keep = await open(keys.read);
      const revoked = await ctx.t.key(['read'], 'stream-revoked');
      const a = await open(revoked);
      assert.equal((await ctx.t.request('DELETE', `/api/v1/auth/keys/${await idOf('stream-revoked')}`)).status, 204);
      await within(a.sse.ended, 'SSE of a key revoked through the API');
      assert.deepEqual(await within(a.ws.closed, 'WebSocket of a key revoked through the API'), {
        code: 1008,
        reason: 'API key revoked or expired',
      });
      // Behind this instance's back: the CLI or another instance revoking, a key expiring.
      const elsewhere = await ctx.t.key(['read'], 'stream-revoked-elsewhere');
      const expiring = await ctx.t.key(['read'], 'stream-expiring');
      const b = await open(elsewhere);
      const c = await open(expiring);
      await ctx.t.sql.query(`UPDATE api_keys SET revoked_at = now() WHERE name = 'stream-revoked-elsewhere'`);
      await ctx.t.sql.query(
        `UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'stream-expiring'`,
      );
      await ctx.t.app.get(StreamHub).checkKeys();
      for (const [what, s] of [
        ['revoked elsewhere', b],
        ['expired', c],
      ] as const) {
        await within(s.sse.ended, `SSE of a key ${what}`);
        assert.equal((await within(s.ws.closed, `WebSocket of a key ${what}`)).code, 1008);
      }
      // The streams of a live key stay open.
      assert.equal(keep.ws.ws.readyState, keep.ws.ws.OPEN);
      const live = await sseClient(`http://${base}/api/v1/metrics/stream`, bearer(keys.read));
      assert.equal(live.status, 200);
      let ended = false;
      void keep.sse.ended.then(() => (ended = true));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(ended, false);
      live.close();
      keep.sse.close();
      await keep.ws.close();
    });

    it('admits SSE with a read key in the header or ?access_token=, and refuses one without', async () => {
      const none = await sseClient(`http://${base}/api/v1/metrics/stream`);
      assert.equal(none.status, 401);
      assert.equal(JSON.parse(none.body!).error.code, 'UNAUTHORIZED');
      const wrong = await sseClient(`http://${base}/api/v1/metrics/stream`, bearer(keys.ingest));
      assert.equal(wrong.status, 403);
      for (const s of [
        await sseClient(`http://${base}/api/v1/metrics/stream`, bearer(keys.read)),
        await sseClient(`http://${base}/api/v1/metrics/stream?access_token=${keys.read}`),
      ]) {
        assert.equal(s.status, 200);
        s.close();
      }
    });
  });
});

describe('front door: rate limits', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp('postgresql', {
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_INGEST: '3',
      RATE_LIMIT_QUERY: '5',
      RATE_LIMIT_AUTH_FAILURES: '3',
      RATE_LIMIT_MONITORING_ALERTS: '2',
    });
  });
  after(() => t?.close());

  const ingest = (headers: Record<string, string>, ip = '10.0.0.1') =>
    inject(t, {
      method: 'POST',
      url: '/api/v1/metrics',
      headers: { ...headers, 'content-type': 'application/json' },
      payload: JSON.stringify({ source: 's', metrics: [{ name: 'rl', value: 1 }] }),
      ip,
    });

  it("answers 429 with Retry-After and the reference body past a key's limit, per key and per class", async () => {
    const a = await t.key(['ingest', 'read'], 'rl-a');
    const b = await t.key(['ingest'], 'rl-b');
    for (let i = 0; i < 3; i++) {
      const r = await ingest(bearer(a));
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers['x-ratelimit-limit'], '3');
      assert.equal(r.headers['x-ratelimit-remaining'], String(2 - i));
    }
    const limited = await ingest(bearer(a));
    assert.equal(limited.status, 429);
    const retry = Number(limited.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 20, String(retry));
    assert.equal(limited.json.error.code, 'RATE_LIMIT_EXCEEDED');
    assert.equal(limited.json.error.retry_after, retry);
    assert.equal(limited.json.error.limit, 3);
    assert.equal(limited.json.error.window, '1m');
    // The same client's reads have their own bucket; another key its own.
    assert.equal((await inject(t, { url: '/api/v1/metrics/names', headers: bearer(a) })).status, 200);
    assert.equal((await ingest(bearer(b))).status, 200);
    // The seed's alert-listing limit applies to its path only.
    for (let i = 0; i < 2; i++)
      assert.equal((await inject(t, { url: '/api/v1/monitoring/alerts', headers: bearer(a) })).status, 200);
    assert.equal((await inject(t, { url: '/api/v1/monitoring/alerts', headers: bearer(a) })).status, 429);
    // Health is never limited.
    for (let i = 0; i < 20; i++) assert.equal((await inject(t, { url: '/health/live' })).status, 200);
  });

  it("honours a key's own limits (0: unlimited)", async () => {
    const bulk = await t.key(['ingest'], 'rl-bulk', { rate_limits: { ingest: 0 } });
    for (let i = 0; i < 10; i++) assert.equal((await ingest(bearer(bulk))).status, 200);
  });

  it('blocks an address after repeated bad keys, also for a key not seen live yet, but not other addresses nor keys in use', async () => {
    const good = await t.key(['ingest'], 'rl-good');
    const inUse = await t.key(['ingest'], 'rl-in-use');
    assert.equal((await ingest(bearer(inUse), '10.9.9.11')).status, 200); // live when last seen
    for (let i = 0; i < 3; i++) assert.equal((await ingest(bearer(`tsk_${'C'.repeat(43)}`), '10.9.9.9')).status, 401);
    const blocked = await ingest(bearer(good), '10.9.9.9');
    assert.equal(blocked.status, 429);
    assert.equal(blocked.json.error.details.class, 'auth_failures');
    assert.equal((await ingest(bearer(`tsk_${'E'.repeat(43)}`), '10.9.9.9')).status, 429, 'guesses stay blocked');
    assert.equal((await ingest(bearer(good), '10.9.9.10')).status, 200);
    // A client behind the same proxy or NAT as the guesser, with a key it has been using.
    assert.equal((await ingest(bearer(inUse), '10.9.9.9')).status, 200);
  });

  it('refuses a query with 100,000 tag filters at once, before it reaches the planner', async () => {
    const reader = await t.key(['read'], 'rl-reader', { rate_limits: { query: 0 } });
    const tags = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v']));
    const started = Date.now();
    const r = await inject(t, {
      method: 'POST',
      url: '/api/v1/metrics/query/multi',
      headers: { ...bearer(reader), 'content-type': 'application/json' },
      payload: JSON.stringify({ queries: [{ metric: 'rl', tags }] }),
    });
    assert.equal(r.status, 400, r.body);
    assert.match(r.json.error.message, /at most 1000/);
    assert.ok(Date.now() - started < 5_000);
  });

  it('refuses a large body with too many tag filters from its bytes, on every route that takes filters', async () => {
    const reader = await t.key(['read'], 'rl-reader-2', { rate_limits: { query: 0 } });
    const tags = { host: Array.from({ length: 100_000 }, (_, i) => `h${i}`) };
    // Each body also holds a problem the route finds before it reads the filter (a bad time, an
    // unknown parameter): the guard, which looks only at the filter, names the filter instead.
    const cases: Array<[string, unknown, string]> = [
      ['/api/v1/metrics/query/multi', { queries: [{ metric: 'rl', tags }], from: 'bad' }, 'queries[0].tags'],
      ['/api/v1/metrics/anomalies', { metric: 'rl', tags, unknown_parameter: 1 }, 'tags'],
      ['/api/v1/metrics/exports', { metric: 'rl', format: 'csv', from: 'bad', tags }, 'tags'],
    ];
    for (const [url, body, parameter] of cases) {
      const r = await inject(t, {
        method: 'POST',
        url,
        headers: { ...bearer(reader), 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
      assert.equal(r.status, 400, `${url}: ${r.body}`);
      assert.equal(r.json.error.code, 'INVALID_QUERY');
      assert.equal(r.json.error.message, `${parameter} may hold at most 1000 key:value filters`);
      assert.equal(r.json.error.details.parameter, parameter);
      assert.notEqual(r.headers.connection, 'close'); // the body was read in full: the connection stays
    }
  });
});

describe('front door: X-RateLimit headers on every 429', () => {
  let t: TestApp;
  let base: string;
  before(async () => {
    const one = (c: string) => [`RATE_LIMIT_${c}`, '1'];
    const classes = ['INGEST', 'QUERY', 'ADMIN', 'STREAM', 'MONITORING_METRICS', 'MONITORING_LOGS'];
    t = await startApp('postgresql', {
      RATE_LIMIT_ENABLED: 'true',
      ...Object.fromEntries(classes.map(one)),
      ...Object.fromEntries([...['MONITORING_ALERTS', 'DOCS', 'AUTH_FAILURES'].map(one)]),
    });
    base = `127.0.0.1:${await t.listen()}`;
  });
  after(() => t?.close());

  /** The first answer passes with nothing left; the second is the 429, and says the same. */
  function assertLimited(
    what: string,
    first: { status: number; headers: Headers | Record<string, unknown> },
    second: typeof first,
  ) {
    const get = (r: typeof first, h: string) => (r.headers instanceof Headers ? r.headers.get(h) : r.headers[h]);
    assert.ok(first.status < 400, `${what}: first answer ${first.status}`);
    assert.deepEqual([get(first, 'x-ratelimit-limit'), get(first, 'x-ratelimit-remaining')], ['1', '0'], what);
    assert.equal(second.status, 429, what);
    assert.ok(Number(get(second, 'retry-after')) >= 1, what);
    assert.deepEqual([get(second, 'x-ratelimit-limit'), get(second, 'x-ratelimit-remaining')], ['1', '0'], what);
  }

  it('carries X-RateLimit-Limit and X-RateLimit-Remaining: 0 on the 429 of every rate class', async () => {
    const admin = t.adminKey!;
    const reader = await t.key(['read'], 'hdr-reader');
    const ingest = await t.key(['ingest'], 'hdr-ingest');
    const routes: Array<[string, Parameters<typeof inject>[1]]> = [
      [
        'ingest',
        {
          method: 'POST',
          url: '/api/v1/metrics',
          headers: { ...bearer(ingest), 'content-type': 'application/json' },
          payload: JSON.stringify({ source: 's', metrics: [{ name: 'rl', value: 1 }] }),
        },
      ],
      ['query', { url: '/api/v1/metrics/names', headers: bearer(reader) }],
      ['admin', { url: '/api/v1/auth/keys', headers: bearer(admin) }],
      ['monitoring_metrics', { url: '/prometheus-metrics', headers: bearer(reader) }],
      ['monitoring_logs', { url: '/api/v1/monitoring/logs', headers: bearer(reader) }],
      ['monitoring_alerts', { url: '/api/v1/monitoring/alerts', headers: bearer(reader) }],
      ['docs', { url: '/', ip: '10.1.1.1' }],
    ];
    for (const [rateClass, req] of routes) {
      const [first, second] = [await inject(t, req), await inject(t, req)];
      assertLimited(rateClass, first, second);
      assert.equal(second.json.error.details.class, rateClass);
    }

    // Repeated wrong keys: the address's 429, also with a good key not seen live yet.
    const unseen = await t.key(['read'], 'hdr-unseen');
    const bad = await inject(t, {
      url: '/api/v1/metrics/names',
      headers: bearer(`tsk_${'D'.repeat(43)}`),
      ip: '10.2.2.2',
    });
    assert.equal(bad.status, 401);
    const blocked = await inject(t, { url: '/api/v1/auth/whoami', headers: bearer(unseen), ip: '10.2.2.2' });
    assert.equal(blocked.status, 429);
    assert.equal(blocked.json.error.details.class, 'auth_failures');
    assert.deepEqual([blocked.headers['x-ratelimit-limit'], blocked.headers['x-ratelimit-remaining']], ['1', '0']);

    // Streams: SSE through the onRequest hook, the WebSocket through its upgrade.
    const sse = await sseClient(`http://${base}/api/v1/metrics/stream`, bearer(reader));
    sse.close();
    assertLimited('stream (SSE)', sse, await sseClient(`http://${base}/api/v1/metrics/stream`, bearer(reader)));
    const streamer = await t.key(['read'], 'hdr-streamer');
    assert.equal(await wsOutcome(`ws://${base}/ws/metrics`, bearer(streamer)), 'open');
    const ws = await wsRefusal(`ws://${base}/ws/metrics`, bearer(streamer));
    assert.equal(ws.status, 429);
    assert.match(String(ws.headers['content-type']), /^application\/json/);
    assert.equal(JSON.parse(ws.body).error.code, 'RATE_LIMIT_EXCEEDED');
    assert.deepEqual([ws.headers['x-ratelimit-limit'], ws.headers['x-ratelimit-remaining']], ['1', '0']);
    assert.ok(Number(ws.headers['retry-after']) >= 1);
  });
});

describe('front door: AUTH=off (local play)', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp('postgresql', { AUTH: 'off', RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_QUERY: '2' });
  });
  after(() => t?.close());

  it('needs no key from this machine, and limits by client address', async () => {
    assert.equal(t.adminKey, undefined);
    assert.equal((await inject(t, { url: '/api/v1/metrics/names', ip: '127.0.0.2' })).status, 200);
    assert.equal((await inject(t, { url: '/api/v1/metrics/names', ip: '127.0.0.2' })).status, 200);
    assert.equal((await inject(t, { url: '/api/v1/metrics/names', ip: '127.0.0.2' })).status, 429);
    assert.equal((await inject(t, { url: '/api/v1/metrics/names', ip: '127.0.0.3' })).status, 200);
    const bodyless = await inject(t, { method: 'POST', url: '/api/v1/system/jobs/nothing/run', ip: '127.0.0.4' });
    assert.equal(bodyless.status, 404, 'a bodyless POST from curl (no Origin) reaches the route');
  });

  it('refuses what a web page on another site could send through the browser: cross-origin, cross-site, another Host (DNS rebinding)', async () => {
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, Record<string, string>]> = [
      ['cross-origin JSON', { ...json, origin: 'http://evil.example' }],
      ['cross-site bodyless', { 'sec-fetch-site': 'cross-site' }],
      ['opaque origin', { ...json, origin: 'null' }],
      ['rebound host', { ...json, host: 'evil.example:8080' }],
    ];
    for (const [what, headers] of cases) {
      const r = await inject(t, {
        method: 'PUT',
        url: '/api/v1/config',
        headers,
        payload: headers['content-type'] ? '{"storage":{"retention_days":1}}' : undefined,
        ip: '127.0.0.5',
      });
      assert.equal(r.status, 403, what);
      assert.equal(r.json.error.code, 'FORBIDDEN', what);
    }
    const form = await inject(t, {
      method: 'POST',
      url: '/api/v1/pipelines',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'name=x',
      ip: '127.0.0.5',
    });
    assert.equal(form.status, 415);
    const same = await inject(t, {
      method: 'PUT',
      url: '/api/v1/config',
      headers: { 'content-type': 'application/json', origin: 'http://localhost:80', host: 'localhost:80' },
      payload: '{}',
      ip: '127.0.0.6',
    });
    assert.equal(same.status, 200, same.body);
    assert.equal((await t.get('/api/v1/config')).json.storage.retention_days, 7);
  });
});
