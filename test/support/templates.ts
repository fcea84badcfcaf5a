import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { Logger } from '@nestjs/common';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.js';
import { migrate } from '../../src/database/migrator.js';
import type { TestFlavour } from './databases.js';
import { createPglite } from './pglite.js';

/**
 * Template databases, built once per test run by test/run.ts before the test files start, with the
 * app's own `migrate()` (as MIGRATE_ON_START runs it), so that each suite starts from an already
 * migrated copy instead of migrating a fresh database:
 * - `postgresql`: a database on the test server; suites get `CREATE DATABASE … TEMPLATE` it.
 * - `timescaledb`: a PGlite data directory dumped to a tar file; suites start PGlite from it.
 * The test processes find them through the environment variables below (createTestDatabase).
 * Without them (a test file run directly), every suite migrates a fresh database, as before.
 */
export const TEMPLATE_ENV: Record<TestFlavour, string> = {
  postgresql: 'TIMESCOPE_TEST_PG_TEMPLATE',
  timescaledb: 'TIMESCOPE_TEST_PGLITE_TEMPLATE',
};

export interface Templates {
  /** Environment for the test processes. */
  env: Record<string, string>;
  /** Drops what was built on the server (the PGlite file lies in the caller's directory). */
  drop(): Promise<void>;
}

const quiet = { log() {}, warn: (m: string) => new Logger('test-templates').warn(m) } as unknown as Logger;

/** The TIMESCALEDB setting the app starts with in the tests (the default: tests do not set it). */
function wantedFlavour(url: string) {
  return loadConfig({ DATABASE_URL: url }).timescaledb;
}

/** Migrates a new database `name` on the server at `admin` and leaves it with no connection, ready to be copied. */
export async function buildPostgresTemplate(admin: string, name: string): Promise<Templates> {
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const c = new pg.Client({ connectionString: url.toString() });
  await c.connect();
  try {
    await migrate(c, wantedFlavour(url.toString()), quiet);
  } finally {
    await c.end();
  }
  return {
    env: { [TEMPLATE_ENV.postgresql]: name },
    async drop() {
      const a = new pg.Client({ connectionString: admin });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * Migrates a fresh PGlite with TimescaleDB through the wire protocol, as the app does, and dumps
 * its data directory (uncompressed: loading skips a gunzip) to `dir`/pglite-template.tar.
 */
export async function buildPgliteTemplate(dir: string): Promise<Templates> {
  const db = await createPglite();
  try {
    const server = new PGLiteSocketServer({ db: db as never, port: 0, host: '127.0.0.1' });
    await server.start();
    const url = `postgres://postgres@${server.getServerConn()}/postgres`;
    try {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await migrate(c, wantedFlavour(url), quiet);
      } finally {
        await c.end();
      }
    } finally {
      await server.stop();
    }
    // PGlite serves template1. template0 is 7 of the 31 MB that every suite's PGlite would untar,
    // and a checkpoint leaves little WAL to replay at start. Together: 0.60 → 0.43 s per PGlite
    // start, median of 7. postgres is 7 MB more (the Grafana suite makes its own second database).
    for (const statement of [
      'ALTER DATABASE template0 IS_TEMPLATE false',
      'DROP DATABASE template0',
      'DROP DATABASE postgres',
      'CHECKPOINT',
    ])
      await db.exec(statement);
    const tar = Buffer.from(await (await db.dumpDataDir('none')).arrayBuffer());
    const file = join(dir, 'pglite-template.tar');
    writeFileSync(`${file}.part`, tar);
    renameSync(`${file}.part`, file);
    return { env: { [TEMPLATE_ENV.timescaledb]: file }, async drop() {} };
  } finally {
    await db.close();
  }
}
