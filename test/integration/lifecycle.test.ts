import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { closeGracefully } from '../../src/common/graceful-shutdown.js';
import { freePort } from '../../src/database/embedded.js';
import { startApp } from '../support/app.js';
import { createTestDatabase, sqlClient, TestDatabase } from '../support/databases.js';

/**
 * The real service as a process (`node dist/src/main.js`): graceful stop under load, and the
 * embedded PostgreSQL's lifecycle (generated password, kill -9 recovery, one owner per DATA_DIR).
 */
const dist = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(dist, 'src/main.js');
const MIGRATE = join(dist, 'src/cli/migrate.js');

interface Service {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

function baseEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    HOST: '127.0.0.1',
    COLLECTOR_ENABLED: 'false',
    JOBS_ENABLED: 'false',
    LOG_LEVEL: 'log',
    LOG_FORMAT: 'text',
    AUTH: 'off', // the auth layer being added on main: these tests are about the lifecycle
    ...env,
  };
  if (!env.DATABASE_URL) delete e.DATABASE_URL;
  return e;
}

/** Runs a script of dist/ to its end. */
function runScript(
  script: string,
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c));
    child.stderr!.on('data', (c: Buffer) => (output += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not finish within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Starts the service and resolves once it logs that it is listening. */
async function startService(env: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: baseEnv({ PORT: String(port), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not start within 60 s:\n${output}`)), 60_000);
    const onData = (c: Buffer) => {
      output += c;
      if (/Timescope listening on/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the service exited with ${code} before listening:\n${output}`));
    });
  });
  return { child, port, output: () => output, exited };
}

async function exitOf(s: Service, timeoutMs = 30_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    s.exited,
    new Promise<never>(
      (_, reject) =>
        (timer = setTimeout(
          () => reject(new Error(`the service did not exit within ${timeoutMs} ms:\n${s.output()}`)),
          timeoutMs,
        )),
    ),
  ]);
  clearTimeout(timer);
  return code;
}

/** An HTTP request on a connection of its own: answer, or the connection error's code. */
function post(port: number, path: string, body: Buffer, opts: { splitAt?: number } = {}) {
  let sendRest = () => {};
  const reply = new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    if (opts.splitAt === undefined) req.end(body);
    else {
      req.write(body.subarray(0, opts.splitAt));
      sendRest = () => req.end(body.subarray(opts.splitAt));
    }
  });
  return { reply, sendRest: () => sendRest() };
}

async function ready(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/health/ready`)).status;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const POINTS = 5_000;
function batch(source: string): Buffer {
  const t0 = Date.now() - 120_000;
  return Buffer.from(
    JSON.stringify({
      source,
      metrics: Array.from({ length: POINTS }, (_, i) => ({
        name: 'drain_m',
        value: i,
        timestamp: t0 + i,
        tags: { s: String(i % 20) },
      })),
    }),
  );
}

describe('closeGracefully', () => {
  it('lets a request in flight finish with 200 and answers a new one 503 SERVICE_UNAVAILABLE with Retry-After and Connection: close', async () => {
    const t = await startApp('postgresql');
    try {
      const fastify = t.app.getHttpAdapter().getInstance();
      const body = batch('inproc');
      const stream = new PassThrough();
      const first = fastify.inject({
        method: 'POST',
        url: '/api/v1/metrics',
        headers: { ...t.authHeaders, 'content-type': 'application/json' },
        payload: stream,
      });
      stream.write(body.subarray(0, body.length >> 1));
      await sleep(100);
      const closing = closeGracefully(t.app, { drainMs: 10_000 });
      const refused = await fastify.inject({ method: 'GET', url: '/health/live' });
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(refused.json().error.code, 'SERVICE_UNAVAILABLE');
      assert.ok(Number(refused.headers['retry-after']) > 0);
      assert.equal(refused.headers.connection, 'close');
      stream.end(body.subarray(body.length >> 1));
      const reply = await first;
      assert.equal(reply.statusCode, 200, reply.body);
      assert.equal(reply.json().metrics_accepted, POINTS);
      await closing;
      const c = await sqlClient(t.database.url);
      try {
        assert.equal(
          (await c.query(`SELECT count(*)::int AS n FROM metrics WHERE source = 'inproc'`)).rows[0].n,
          POINTS,
        );
      } finally {
        await c.end();
      }
    } finally {
      await t.database.drop(); // the app is closed already
    }
  });
});

describe('graceful stop with DATABASE_URL', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('postgresql');
  });
  after(async () => {
    await db?.drop();
  });

  it('on SIGTERM refuses new connections, answers every accepted request with 2xx, commits every acknowledged point and exits 0', async () => {
    const service = await startService({ DATABASE_URL: db.url, DB_WRITE_CONNECTIONS: '2' });
    const lock = await sqlClient(db.url);
    try {
      // Hold the writer up: every request below is still in flight, inside the writer, when the signal comes.
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE points IN ACCESS EXCLUSIVE MODE');
      const whole = Array.from({ length: 4 }, (_, r) => post(service.port, '/api/v1/metrics', batch(`drain${r}`)));
      // These two have sent their headers and half of their body: accepted, the rest comes after the signal.
      const halves = [4, 5].map((r) => {
        const body = batch(`drain${r}`);
        return post(service.port, '/api/v1/metrics', body, { splitAt: body.length >> 1 });
      });
      await waitFor(
        async () =>
          (
            await lock.query(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`,
            )
          ).rows[0].n > 0,
        15_000,
        'the writer to wait on the lock',
      );
      await sleep(300);

      service.child.kill('SIGTERM');
      await sleep(300);
      assert.equal(service.child.exitCode, null, 'the service waits for its requests');
      // A new connection is refused at once (not left hanging).
      const late = await Promise.race([
        post(service.port, '/api/v1/metrics', batch('late')).reply,
        sleep(5_000).then(() => ({ error: 'hang' })),
      ]);
      assert.ok(
        'error' in late ? late.error === 'ECONNREFUSED' || late.error === 'ECONNRESET' : late.status === 503,
        `late request: ${JSON.stringify(late)}`,
      );

      for (const h of halves) h.sendRest();
      await sleep(300);
      await lock.query('COMMIT');

      const replies = await Promise.all([...whole, ...halves].map((p) => p.reply));
      replies.forEach((r, i) => {
        assert.ok(!('error' in r), `request ${i}: ${JSON.stringify(r)}`);
        assert.equal(r.status, 200, `request ${i}: ${r.body}`);
        assert.equal(JSON.parse(r.body).metrics_accepted, POINTS);
      });
      assert.equal(await exitOf(service), 0, service.output());
      assert.match(service.output(), /SIGTERM: shutting down/);

      const counts = await lock.query(
        `SELECT source, count(*)::int AS n FROM metrics WHERE source LIKE 'drain%' OR source = 'late' GROUP BY source ORDER BY source`,
      );
      assert.deepEqual(
        counts.rows.map((row) => [row.source, row.n]),
        Array.from({ length: 6 }, (_, r) => [`drain${r}`, POINTS]),
      );
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end();
      service.child.kill('SIGKILL');
    }
  });
});

describe('the embedded PostgreSQL', () => {
  let dataDir: string;
  let cluster: string;
  let pgPort: number;
  let service: Service | undefined;
  let sleeper: ChildProcess | undefined;
  const env = () => ({ DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) });
  const password = () => readFileSync(join(dataDir, 'postgres.password'), 'utf8').trim();
  const postmasterPid = () => Number(readFileSync(join(cluster, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const connect = async (pw: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: pw, database: 'postgres' });
    await c.connect();
    return c;
  };
  /** Live processes running postgres on this cluster directory. */
  const postgresOnCluster = () =>
    readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
          return /postgres$/.test(argv[0]) && argv.includes(cluster);
        } catch {
          return false;
        }
      });
  const assertStopped = () => {
    assert.equal(existsSync(join(cluster, 'postmaster.pid')), false, 'postmaster.pid removed');
    assert.deepEqual(postgresOnCluster(), [], 'no postgres left on the data directory');
    assert.equal(existsSync(join(dataDir, 'timescope.lock')), false, 'owner lock released');
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'timescope-lifecycle-'));
    chmodSync(dataDir, 0o755); // as root, the server runs as `postgres`, which must reach it
    cluster = join(dataDir, 'pg');
    pgPort = await freePort();
  });
  after(async () => {
    sleeper?.kill('SIGKILL');
    if (service && service.child.exitCode === null) {
      service.child.kill('SIGTERM');
      await exitOf(service).catch(() => service!.child.kill('SIGKILL'));
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts on a fresh DATA_DIR with a generated superuser password (0600), and the old constant password is refused', async () => {
    service = await startService(env());
    assert.equal(await ready(service.port), 200);
    assert.equal(statSync(join(dataDir, 'postgres.password')).mode & 0o777, 0o600);
    assert.match(password(), /^[A-Za-z0-9_-]{32}$/);
    await assert.rejects(connect('timescope'), (err: { code?: string }) => err.code === '28P01');
    await (await connect(password())).end();
  });

  it('refuses a second service on the same DATA_DIR, and lets a command-line tool join the running server as a guest', async () => {
    const pid = postmasterPid();
    const [second, migrate] = await Promise.all([
      runScript(MAIN, { ...env(), PORT: String(await freePort()) }),
      runScript(MIGRATE, env()),
    ]);
    assert.equal(second.code, 1, second.output);
    assert.match(second.output, /is in use by another Timescope process \(pid \d+/);
    assert.equal(migrate.code, 0, migrate.output);
    assert.match(migrate.output, /using the embedded PostgreSQL .* that Timescope pid \d+ runs/);
    assert.equal(postmasterPid(), pid, 'the guest left the server running');
    assert.equal(await ready(service!.port), 200);
  });

  it('after kill -9 of the service, the next start takes over the orphaned server', async () => {
    const orphan = postmasterPid();
    service!.child.kill('SIGKILL');
    await exitOf(service!);
    assert.deepEqual(
      postgresOnCluster().includes(String(orphan)),
      true,
      'postgres outlives a kill -9 of the service (its own session)',
    );
    service = await startService(env());
    assert.equal(await ready(service.port), 200);
    assert.match(service.output(), /still running .* without its owner/);
  });

  it('on SIGINT stops the service, then the embedded server, and exits 0', async () => {
    // For the next test, what an older Timescope left: the superuser password was the constant 'timescope'.
    const c = await connect(password());
    await c.query(`ALTER ROLE postgres PASSWORD 'timescope'`);
    await c.end();
    service!.child.kill('SIGINT');
    assert.equal(await exitOf(service!), 0, service!.output());
    assert.match(service!.output(), /PostgreSQL stopped/);
    assertStopped();
  });

  it('starts over a stale postmaster.pid whose pid another process has now and a stale owner lock, and replaces the constant password of an older cluster', async () => {
    unlinkSync(join(dataDir, 'postgres.password')); // an older Timescope had none
    sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    writeFileSync(
      join(cluster, 'postmaster.pid'),
      `${sleeper.pid}\n${cluster}\n${Math.floor(Date.now() / 1000)}\n${pgPort}\n\n127.0.0.1\n  1234567  0\nready   \n`,
    );
    const gone = spawn('true');
    await new Promise((r) => gone.on('exit', r));
    writeFileSync(
      join(dataDir, 'timescope.lock'),
      JSON.stringify({
        pid: gone.pid,
        started: null,
        port: pgPort,
        command: 'node main.js',
        since: new Date().toISOString(),
      }),
    );

    service = await startService(env());
    assert.equal(await ready(service.port), 200);
    assert.match(service.output(), /removing a stale .*postmaster\.pid/);
    assert.equal(sleeper.exitCode, null, 'the process that has the pid is left alone');
    assert.match(service.output(), /replaced the former constant superuser password/);
    assert.equal(statSync(join(dataDir, 'postgres.password')).mode & 0o777, 0o600);
    await assert.rejects(connect('timescope'), (err: { code?: string }) => err.code === '28P01');
    await (await connect(password())).end();

    service.child.kill('SIGTERM');
    assert.equal(await exitOf(service), 0, service.output());
    assertStopped();
  });
});
