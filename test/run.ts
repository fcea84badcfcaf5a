import { spawn } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startEmbeddedPostgres } from '../src/database/embedded.js';

/**
 * `make test`: runs every test file under dist/test with node's test runner. Storage tests need
 * a real PostgreSQL server: TEST_DATABASE_URL (an admin connection that may create databases),
 * or else an embedded PostgreSQL started here in a temporary directory and stopped at the end.
 * Arguments filter the test files by substring (`node dist/test/run.js query`).
 */
const here = fileURLToPath(new URL('.', import.meta.url));

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'support' ? [] : testFiles(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2);
  const files = testFiles(here)
    .filter((f) => filters.length === 0 || filters.some((x) => relative(here, f).includes(x)))
    .sort();
  if (files.length === 0) {
    console.error(`no test files match ${filters.join(' ')}`);
    return 1;
  }
  let stop = async () => {};
  let admin = process.env.TEST_DATABASE_URL;
  if (!admin) {
    const port = await freePort();
    const dataDir = join(tmpdir(), `timescope-test-${process.pid}`);
    const server = await startEmbeddedPostgres({
      dataDir,
      port,
      database: 'postgres',
      settings: { fsync: 'off', full_page_writes: 'off' }, // a throwaway cluster
    });
    admin = server.url;
    stop = async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
    console.log(`# tests use an embedded PostgreSQL on port ${port}`);
  } else {
    console.log('# tests use TEST_DATABASE_URL');
  }
  try {
    return await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', ...files], {
        stdio: 'inherit',
        env: { ...process.env, TIMESCOPE_TEST_ADMIN_URL: admin, TZ: 'UTC' },
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
      // Ctrl-C or SIGTERM: the tests stop, then the server (it runs in a session of its own, so the
      // terminal's Ctrl-C does not reach it).
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
    });
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
