import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/database/embedded.js';

/*
 * A real Prometheus (the Debian/Ubuntu package `prometheus`) for the tests that need one: the
 * scrape of the self-metrics, and remote write into Timescope. Without the binary those suites are
 * skipped, saying so; TIMESCOPE_TEST_REQUIRE_PROMETHEUS=1 (CI that installs it) makes that a failure.
 */

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
export const PROMETHEUS = which('prometheus');
export const PROMTOOL = which('promtool');
/** Where a real Prometheus must be tested (CI that installs the package): fail instead of skipping. */
export const REQUIRED = process.env.TIMESCOPE_TEST_REQUIRE_PROMETHEUS === '1';

const notInstalled = (what: string) =>
  `prometheus is not installed (Debian/Ubuntu: apt-get install prometheus): ${what} is not tested`;

/**
 * The `skip` option of a describe() that needs Prometheus: false when it is installed (or required),
 * else the reason, which is also printed as `# SKIPPED: …` so that the run says it.
 */
export function prometheusSkip(what: string): false | string {
  if (!PROMETHEUS) console.log(`# ${REQUIRED ? 'FAILING' : 'SKIPPED'}: ${notInstalled(what)}`);
  return PROMETHEUS || REQUIRED ? false : notInstalled(what);
}

/** In a before() hook: throws when Prometheus is missing (reached only when REQUIRED). */
export function requirePrometheus(what: string): void {
  if (!PROMETHEUS) throw new Error(`${notInstalled(what)}, and TIMESCOPE_TEST_REQUIRE_PROMETHEUS=1 requires it`);
}

export interface RunningPrometheus {
  url: string;
  /** What it printed so far (for failure messages). */
  log(): string;
  /** GET an API path; asserts `status: success` and returns `data`. */
  api(path: string): Promise<any>;
  /** An instant query's result. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

/** Starts Prometheus with this configuration (YAML) on a free port and a temporary TSDB. */
export async function startPrometheus(config: string): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'timescope-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const prom = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  prom.stdout!.on('data', (d) => (log += d));
  prom.stderr!.on('data', (d) => (log += d));
  const api = async (path: string) => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: any; error?: string };
    assert.equal(body.status, 'success', `${path}: ${JSON.stringify(body)}`);
    return body.data;
  };
  return {
    url,
    log: () => log,
    api,
    query: async (expr) => (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    async stop() {
      if (prom.exitCode === null) {
        const exited = new Promise((r) => prom.once('exit', r));
        prom.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (prom.exitCode === null) prom.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
