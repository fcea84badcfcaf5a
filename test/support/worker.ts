import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe } from 'node:test';
import { pathToFileURL } from 'node:url';
import { runWorkerEnd } from './worker-end.js';

/**
 * Test workers (test/run.ts): a few long-lived test processes instead of one per test file. Each
 * worker takes the next file from a queue directory shared by all workers, runs it inside a
 * suite named after the file, and takes the next once that suite has finished, until the queue is
 * empty. A process pays its module loading (~2 s for the app) and PGlite's WebAssembly warm-up
 * once instead of once per file, and the files spread over the workers as they finish.
 *
 * Queue layout: `todo/NNNN` (the next files, in order; each holds the absolute path of a test
 * file), `taken/NNNN` (running or crashed), `done/NNNN`, and `timings` (one `ms pid endedAt cpuMs file`
 * line per file run: wall time, worker, end, and the worker's CPU time in the file, PGlite included),
 * and `pglite` (one `reused discarded` line per worker that reused PGlite, by support/databases.ts).
 */
export function createQueue(dir: string, files: string[]): void {
  for (const d of ['todo', 'taken', 'done']) mkdirSync(join(dir, d), { recursive: true });
  files.forEach((f, i) => writeFileSync(join(dir, 'todo', String(i).padStart(4, '0')), f));
}

/** Takes the next file: the rename is atomic, so each file goes to exactly one worker. */
function claim(dir: string): { entry: string; file: string } | undefined {
  for (const entry of readdirSync(join(dir, 'todo')).sort()) {
    try {
      renameSync(join(dir, 'todo', entry), join(dir, 'taken', entry));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // another worker was first
      throw err;
    }
    return { entry, file: readFileSync(join(dir, 'taken', entry), 'utf8') };
  }
  return undefined;
}

/** What is left in the queue after the workers have exited: files never started, and files whose worker died under them. */
export function unfinished(dir: string): { notStarted: string[]; interrupted: string[] } {
  const read = (d: string) =>
    readdirSync(join(dir, d))
      .sort()
      .map((e) => readFileSync(join(dir, d, e), 'utf8'));
  return { notStarted: read('todo'), interrupted: read('taken') };
}

/** The lines of a file the workers append to in the queue directory (none when no worker wrote it). */
function queueLog(dir: string, name: string): string[] {
  try {
    return readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

export function timings(
  dir: string,
): Array<{ ms: number; file: string; worker: number; endedAt: number; cpuMs: number }> {
  return queueLog(dir, 'timings').map((line) => {
    const [ms, worker, endedAt, cpuMs, ...file] = line.split(' ');
    return {
      ms: Number(ms),
      worker: Number(worker),
      endedAt: Number(endedAt),
      cpuMs: Number(cpuMs),
      file: file.join(' '),
    };
  });
}

/** What the workers' PGlite reuse did (support/pglite-reuse.ts), summed; undefined when no worker started one. */
export function pgliteReuseOf(dir: string): { reused: number; discarded: number } | undefined {
  const lines = queueLog(dir, 'pglite');
  if (lines.length === 0) return undefined;
  return lines
    .map((line) => line.split(' ').map(Number))
    .reduce((sum, [reused, discarded]) => ({ reused: sum.reused + reused, discarded: sum.discarded + discarded }), {
      reused: 0,
      discarded: 0,
    });
}

/** The body of a worker process: runs queued files one after another until none is left. */
export async function runQueue(dir: string, root: string): Promise<void> {
  for (;;) {
    const next = claim(dir);
    if (!next) {
      await runWorkerEnd(dir);
      return;
    }
    const name = relative(root, next.file);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    // Importing inside the suite makes the file's top-level tests and hooks (before/after) the
    // suite's own: they run, and are reported, under the file's name.
    await describe(name, { timeout: Infinity }, async () => {
      await import(pathToFileURL(next.file).href);
    });
    // TIMESCOPE_TEST_MEMORY=<file>: each worker's RSS after each file, to spot what a file leaves reachable.
    if (process.env.TIMESCOPE_TEST_MEMORY)
      appendFileSync(
        process.env.TIMESCOPE_TEST_MEMORY,
        `${process.pid} ${Math.round(process.memoryUsage().rss / 1e6)} MB after ${name}\n`,
      );
    const cpu = process.cpuUsage(cpu0);
    appendFileSync(
      join(dir, 'timings'),
      `${Math.round(performance.now() - t0)} ${process.pid} ${Date.now()} ${Math.round((cpu.user + cpu.system) / 1000)} ${name}\n`,
    );
    renameSync(join(dir, 'taken', next.entry), join(dir, 'done', next.entry));
  }
}
