import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from '../src/app.factory.js';
import { CollectorService } from '../src/collector/collector.service.js';
import { loadConfig } from '../src/config/config.js';
import { SettingsService } from '../src/settings/settings.service.js';
import { benchServer, flag, option } from './lib.js';

/**
 * The collector's own cost with the default intervals (sample every 5 s, persist every 30 s):
 * CPU of this process (and of the nvidia-smi children it starts) per core, and whether the heap
 * grows. The app runs on an embedded PostgreSQL. The collector is switched on live (as PUT
 * /api/v1/config does), warmed up for one persist, measured for 2 minutes (`--quick`: 30 s;
 * `--seconds N` for a longer look at memory), then switched off again for a baseline of the idle app.
 * A stand-in nvidia-smi (a shell script printing four recorded GPUs) makes this the GPU-host case.
 * Targets: under 1% of one core on average; no growth of the heap.
 */
const quick = flag('quick');
const WARMUP_S = quick ? 10 : 30;
const BASELINE_S = quick ? 10 : 30;
const MEASURE_S = option('seconds', quick ? 30 : 120);
const TICKS = 100; // USER_HZ: /proc/self/stat counts children's CPU in 1/100 s

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of the children this process has waited for (nvidia-smi), from /proc/self/stat. */
function childCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / TICKS; // cutime, cstime
  } catch {
    return NaN;
  }
}

/** CPU per wall second over `seconds`; what `probe` itself costs (forced GCs for the heap figures) is not counted. */
async function measure(seconds: number, probe?: (elapsed: number) => void) {
  const c0 = process.cpuUsage(),
    k0 = childCpuSeconds(),
    t0 = performance.now();
  let probing = 0;
  for (let s = 1; s <= seconds; s++) {
    await sleep(1_000);
    if (probe) {
      const p0 = process.cpuUsage();
      probe(s);
      const p = process.cpuUsage(p0);
      probing += p.user + p.system;
    }
  }
  const c = process.cpuUsage(c0),
    wall = (performance.now() - t0) / 1000;
  return {
    own: (c.user + c.system - probing) / 1e6 / wall,
    children: (childCpuSeconds() - k0) / wall,
    wall,
    probing: probing / 1e6,
  };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length,
    mx = xs.reduce((a, b) => a + b, 0) / n,
    my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0,
    den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main() {
  const work = join(tmpdir(), `timescope-bench-collector-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const fixture = fileURLToPath(new URL('../../test/fixtures/nvidia-smi/four-gpus.csv', import.meta.url));
  const smi = join(work, 'nvidia-smi');
  writeFileSync(smi, `#!/bin/sh\ncat "${fixture}"\n`);
  chmodSync(smi, 0o755);
  const server = await benchServer();
  console.log(`database: ${server.describe}`);
  const config = loadConfig({
    DATABASE_URL: await server.url('timescope_bench_collector'),
    COLLECTOR_ENABLED: 'false',
    JOBS_ENABLED: 'false',
    LOG_LEVEL: 'error',
    NVIDIA_SMI_PATH: smi,
  });
  const app = await createApp(config, false);
  try {
    const settings = app.get(SettingsService);
    const collector = app.get(CollectorService);
    await settings.update({ collector: { enabled: true } }, { by: 'bench', client: {} });
    await sleep(WARMUP_S * 1000);
    gc();
    const heap: number[] = [],
      rss: number[] = [],
      at: number[] = [];
    const run = await measure(MEASURE_S, (s) => {
      if (s % 10 === 0) {
        gc();
        const m = process.memoryUsage();
        at.push(s);
        heap.push(m.heapUsed / 1024);
        rss.push(m.rss / 1024);
      }
    });
    const st = collector.status();
    await settings.update({ collector: { enabled: false } }, { by: 'bench', client: {} });
    await sleep(2_000);
    const base = await measure(BASELINE_S);
    const heapSlope = slope(at, heap) * 60,
      rssSlope = slope(at, rss) * 60;
    const half = Math.floor(heap.length / 2);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    console.log(
      `collector on, default intervals (${st.interval_live_seconds} s live, ${st.interval_persist_seconds} s persist), after ${WARMUP_S} s of warm-up, ${MEASURE_S} s:`,
    );
    console.log(
      `  samples ${st.samplers[0].samples} host, ${st.samplers[1].samples} GPU; persists ${st.persists}, points persisted ${st.points_persisted}, buffer now ${st.buffer.pending_points}`,
    );
    console.log(
      `  CPU of the whole process: ${(run.own * 100).toFixed(3)}% of one core (an upper bound of the collector's cost)`,
    );
    console.log(`  CPU of the nvidia-smi stand-in children: ${(run.children * 100).toFixed(3)}% of one core`);
    console.log(
      `  baseline, collector off again (${BASELINE_S} s): ${(base.own * 100).toFixed(3)}% of one core; difference ${((run.own - base.own) * 100).toFixed(3)}%`,
    );
    console.log(`  (not counted: ${run.probing.toFixed(3)} s CPU of the forced GCs taken for the heap figures)`);
    console.log(`  heap after GC (KiB) every 10 s: ${heap.map((x) => x.toFixed(0)).join(' ')}`);
    console.log(
      `  heap: first half ${avg(heap.slice(0, half)).toFixed(0)} KiB, second half ${avg(heap.slice(half)).toFixed(0)} KiB; slope ${heapSlope.toFixed(1)} KiB/min; RSS slope ${rssSlope.toFixed(1)} KiB/min`,
    );
    const ok = run.own < 0.01;
    console.log(`  target CPU < 1% of one core: ${ok ? 'met' : 'MISSED'}`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    await app.close();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
