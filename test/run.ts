import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, startEmbeddedPostgres } from '../src/database/embedded.js';
import { writeTimescaleBundle } from './support/pglite.js';
import { buildPgliteTemplate, buildPostgresTemplate, Templates } from './support/templates.js';
import { createQueue, pgliteReuseOf, timings, unfinished } from './support/worker.js';

/**
 * `make test`: runs the test files under dist/test with node's test runner.
 * - Storage tests need a real PostgreSQL server: TEST_DATABASE_URL (an admin connection that may
 *   create databases), or else an embedded PostgreSQL started here in a temporary directory and
 *   stopped at the end. A run of unit tests only (`node dist/test/run.js unit/`) starts none.
 * - Before the files start, one migrated template per flavour is built here
 *   (support/templates.ts); each suite copies it instead of migrating a new database. PGlite loads
 *   TimescaleDB from a bundle without its upgrade scripts, written here too (support/pglite.ts).
 * - The files run in TEST_CONCURRENCY worker processes (default: the CPUs + 1, at most 3), each taking
 *   the next file from a shared queue when it has finished one (support/worker.ts), so that module
 *   loading and PGlite's warm-up are paid once per worker, not once per file.
 *   TEST_ISOLATION=file runs each file in a process of its own instead (slower; for a test
 *   suspected of depending on what another file left behind in the process).
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

const isUnit = (f: string) => relative(here, f).startsWith(`unit${sep}`);

/**
 * The order in which workers take the files: longest first, so that the last file to start is a
 * short one and the workers finish together. Integration files take seconds (an app and a
 * database per suite, PGlite above all), unit files milliseconds; the size of the compiled
 * file stands in for the number of tests.
 */
function longestFirst(files: string[]): string[] {
  const weight = (f: string) => statSync(f).size * (isUnit(f) ? 0.05 : 1);
  return [...files].sort((a, b) => weight(b) - weight(a));
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
  const concurrency = Math.max(1, Number(process.env.TEST_CONCURRENCY) || Math.min(3, availableParallelism() + 1));
  const perFile = process.env.TEST_ISOLATION === 'file';
  const env: Record<string, string> = { TZ: 'UTC' };
  const cleanup: Array<() => Promise<void>> = [];
  const runDir = mkdtempSync(join(tmpdir(), `timescope-test-${process.pid}-`));
  cleanup.push(async () => rmSync(runDir, { recursive: true, force: true }));
  try {
    // Unit tests need no database: a run of test/unit only starts nothing.
    if (!files.every(isUnit)) {
      const t0 = Date.now();
      // TimescaleDB's bundle without its upgrade scripts (support/pglite.ts), for every PGlite of
      // the run, the template's included.
      const bundle = writeTimescaleBundle(runDir);
      if (bundle) env.TIMESCOPE_TEST_PGLITE_EXTENSION = process.env.TIMESCOPE_TEST_PGLITE_EXTENSION = bundle;
      // The PGlite template is built here while the embedded server starts.
      const pglite = buildPgliteTemplate(runDir);
      pglite.catch(() => undefined);
      let admin = process.env.TEST_DATABASE_URL;
      if (!admin) {
        const port = await freePort();
        // Not under runDir (0700): as root, the server runs as the postgres user, who must reach it.
        const dataDir = join(tmpdir(), `timescope-test-${process.pid}`);
        cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
        const server = await startEmbeddedPostgres({
          dataDir,
          port,
          database: 'postgres',
          settings: { fsync: 'off', full_page_writes: 'off' }, // a throwaway cluster
        });
        cleanup.push(() => server.stop());
        admin = server.url;
        console.log(`# tests use an embedded PostgreSQL on port ${port}`);
      } else {
        console.log('# tests use TEST_DATABASE_URL');
      }
      const templates: Templates[] = [await buildPostgresTemplate(admin, `timescope_template_${process.pid}`)];
      cleanup.push(() => templates[0].drop());
      templates.push(await pglite);
      for (const t of templates) Object.assign(env, t.env);
      env.TIMESCOPE_TEST_ADMIN_URL = admin;
      console.log(`# migrated templates built in ${Date.now() - t0} ms`);
    }
    let entries = files;
    const queue = join(runDir, 'queue');
    if (!perFile) {
      createQueue(queue, longestFirst(files));
      const worker = pathToFileURL(join(here, 'support', 'worker.js')).href;
      entries = Array.from({ length: Math.min(concurrency, files.length) }, (_, i) => {
        const f = join(runDir, `worker-${i + 1}.test.mjs`);
        writeFileSync(
          f,
          `import { runQueue } from ${JSON.stringify(worker)};\nawait runQueue(${JSON.stringify(queue)}, ${JSON.stringify(here)});\n`,
        );
        return f;
      });
    }
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...entries],
        {
          stdio: 'inherit',
          env: { ...process.env, ...env },
        },
      );
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
      // Ctrl-C or SIGTERM: the tests stop, then the server (it runs in a session of its own, so the
      // terminal's Ctrl-C does not reach it).
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
    });
    if (perFile) return code;
    const ran = timings(queue);
    const slowest = [...ran].sort((a, b) => b.ms - a.ms).slice(0, 5);
    if (slowest.length > 0)
      console.log(`# slowest files: ${slowest.map((t) => `${t.file} ${(t.ms / 1000).toFixed(1)} s`).join(', ')}`);
    // How evenly the files spread: each worker's time and CPU time in files, and when it ran out of files.
    const workers = new Map<number, { ms: number; cpuMs: number; endedAt: number }>();
    for (const t of ran) {
      const w = workers.get(t.worker) ?? { ms: 0, cpuMs: 0, endedAt: 0 };
      workers.set(t.worker, { ms: w.ms + t.ms, cpuMs: w.cpuMs + t.cpuMs, endedAt: Math.max(w.endedAt, t.endedAt) });
    }
    if (workers.size > 0) {
      const start = Math.min(...ran.map((t) => t.endedAt - t.ms));
      const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
      console.log(
        `# workers: ${[...workers.values()].map((w) => `${s(w.ms)} in files (${s(w.cpuMs)} of CPU), done at ${s(w.endedAt - start)}`).join('; ')}`,
      );
      // Whether the run is bound by the CPUs: the workers' CPU time over the cores (the server and
      // the processes tests start come on top), and where most of it went.
      const cpuMs = ran.reduce((sum, t) => sum + t.cpuMs, 0);
      const byCpu = [...ran].sort((a, b) => b.cpuMs - a.cpuMs).slice(0, 5);
      console.log(
        `# CPU in files: ${s(cpuMs)}, ${s(cpuMs / availableParallelism())} a core on ${availableParallelism()}; most: ${byCpu.map((t) => `${t.file} ${s(t.cpuMs)}`).join(', ')}`,
      );
    }
    const reuse = pgliteReuseOf(queue);
    if (reuse)
      console.log(
        `# PGlite: ${reuse.reused} suites had a reset instance, ${reuse.discarded} instances could not be reset and were closed`,
      );
    const left = unfinished(queue);
    for (const f of left.interrupted)
      console.error(`# ${relative(here, f)}: its worker process ended before the file finished`);
    if (left.notStarted.length > 0)
      console.error(
        `# never started (every worker had ended): ${left.notStarted.map((f) => relative(here, f)).join(', ')}`,
      );
    return left.interrupted.length + left.notStarted.length > 0 ? code || 1 : code;
  } finally {
    for (const fn of cleanup.reverse()) await fn().catch((err) => console.error(err));
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
