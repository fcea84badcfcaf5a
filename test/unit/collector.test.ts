import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Clock,
  Collector,
  collectorHealth,
  CollectorHealthInput,
  CollectorSettings,
} from '../../src/collector/collector.js';
import { GPU_RETRY_MS, GpuSampler } from '../../src/collector/gpu-sampler.js';
import { HostSampler } from '../../src/collector/host-sampler.js';
import { NVIDIA_SMI_ARGS } from '../../src/collector/nvidia-smi.js';
import { SampleBuffer } from '../../src/collector/sample-buffer.js';
import { GpuSample, HostSample, Sampler, SamplerUnavailable } from '../../src/collector/samples.js';
import type { PointBatch } from '../../src/storage/point-batch.js';
import { ApiError, serviceUnavailable } from '../../src/common/errors.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/nvidia-smi/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'timescope-fake-smi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for nvidia-smi: checks it was asked the right query, then prints a recorded output. */
function fakeSmi(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `#!/bin/sh\n[ "$1" = "${NVIDIA_SMI_ARGS[0]}" ] && [ "$2" = "${NVIDIA_SMI_ARGS[1]}" ] || { echo "bad arguments: $*" >&2; exit 2; }\n${body}\n`,
  );
  chmodSync(path, 0o755);
  return path;
}
const replay = (fixture: string, code = 0) => `cat "${fixtures}${fixture}"\nexit ${code}`;
const sampleWith = (path: string, ms = 4_000) => new GpuSampler(() => path).sample(AbortSignal.timeout(ms));

describe('GPU sampler on a fake nvidia-smi', () => {
  it('reads one GPU', async () => {
    const s = await sampleWith(fakeSmi('one', replay('one-gpu.csv')));
    assert.equal(s.gpus.length, 1);
    assert.equal(s.gpus[0].name, 'NVIDIA H100 80GB HBM3');
  });

  it('reads several GPUs and placeholder fields', async () => {
    assert.equal((await sampleWith(fakeSmi('four', replay('four-gpus.csv')))).gpus.length, 4);
    const p = await sampleWith(fakeSmi('placeholders', replay('placeholders.csv')));
    assert.equal(p.gpus.length, 2);
    assert.deepEqual([p.gpus[0].utilization, p.gpus[0].memoryUtilization], [null, null], '[Not Supported]');
    assert.equal(p.gpus[0].powerDraw, null, '[N/A]');
    assert.equal(p.gpus[0].temperature, 38, 'the readable fields of the same GPU are kept');
  });

  it('a missing binary is "not available", retried a minute later', async () => {
    await assert.rejects(sampleWith(join(dir, 'no-such-nvidia-smi')), (e: unknown) => {
      assert.ok(e instanceof SamplerUnavailable);
      assert.match(e.message, /not found/);
      assert.equal(e.retryAfterMs, GPU_RETRY_MS);
      return true;
    });
  });

  it('no devices and a driver failure are "not available" with nvidia-smi\'s own words', async () => {
    await assert.rejects(
      sampleWith(fakeSmi('none', replay('no-devices.txt', 6))),
      (e: unknown) => e instanceof SamplerUnavailable && /exited with 6: No devices were found/.test(e.message),
    );
    await assert.rejects(
      sampleWith(fakeSmi('driver', replay('driver-failed.txt', 9))),
      (e: unknown) => e instanceof SamplerUnavailable && /couldn't communicate with the NVIDIA driver/.test(e.message),
    );
  });

  it('one lost GPU (exit 15) does not hide the others: they are reported, with what nvidia-smi said', async () => {
    const s = await sampleWith(fakeSmi('lost', replay('one-lost.txt', 15)));
    assert.deepEqual(
      s.gpus.map((g) => g.index),
      [0, 1, 2],
    );
    assert.match(s.problem ?? '', /exited with 15: line 4: .*GPU is lost/);
    const whole = await sampleWith(fakeSmi('four-ok', replay('four-gpus.csv')));
    assert.equal(whole.problem, undefined, 'a clean poll has no problem');
  });

  it('garbage is an error that quotes the output', async () => {
    await assert.rejects(
      sampleWith(fakeSmi('garbage', replay('garbage.txt'))),
      /unrecognised nvidia-smi output: line 1/,
    );
  });

  it('a hung nvidia-smi is killed at the deadline, and the next poll can start', async () => {
    const hung = fakeSmi('hung', 'exec sleep 60');
    const sampler = new GpuSampler(() => hung);
    const t0 = performance.now();
    await assert.rejects(sampler.sample(AbortSignal.timeout(300)), /did not answer within the poll's deadline; killed/);
    assert.ok(performance.now() - t0 < 2_000);
    // Once the killed child is reaped, a new one may run.
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(sampler.sample(AbortSignal.timeout(200)), /killed/);
  });
});

describe('collector with a hung nvidia-smi (real time)', () => {
  it('cuts the poll off within the live interval and keeps the host sample', async () => {
    const host: Sampler<HostSample> = { name: 'host', sample: async () => hostReading(Date.now()) };
    const gpu = new GpuSampler(() => fakeSmi('hung-real', 'exec sleep 60'));
    const collector = new Collector({ host, gpu }, settings({ liveMs: 1_000 }), async () => undefined);
    const t0 = performance.now();
    await collector.pollOnce();
    const took = performance.now() - t0;
    assert.ok(took >= 750 && took < 1_000, `cut off at 80% of the 1 s interval, took ${Math.round(took)} ms`);
    const [hostState, gpuState] = collector.samplerStates();
    assert.equal(hostState.samples, 1);
    assert.equal(gpuState.timeouts, 1);
    assert.match(gpuState.reason!, /no answer within 800 ms/);
    assert.equal(collector.buffer.size, HOST_ROWS);
  });
});

describe('host sampler on this machine', { skip: process.platform !== 'linux' }, () => {
  it('reads CPU, memory, the root filesystem and network from /proc', async () => {
    const h = new HostSampler();
    await h.prime();
    await new Promise((r) => setTimeout(r, 200));
    const s = await h.sample(AbortSignal.timeout(5_000));
    assert.ok(s.cpu.usage !== null && s.cpu.usage >= 0 && s.cpu.usage <= 100);
    assert.equal(s.cpu.cores.length, s.cpu.count);
    assert.ok(s.memory.total > 0 && s.memory.used > 0 && s.memory.used <= s.memory.total);
    assert.ok(
      s.filesystems.some((f) => f.total > 0),
      'at least one filesystem',
    );
    assert.equal(s.cpu.loadAverage.length, 3);
    const again = await h.sample(AbortSignal.timeout(5_000));
    for (const n of again.network) assert.ok(n.bytesReceivedPerSec === null || n.bytesReceivedPerSec >= 0);
  });
});

/** Fake time: timers run when advance() passes their due time, with the promises they start settled in between. */
class FakeClock implements Clock {
  t = Date.parse('2026-01-01T00:00:00Z');
  private timers: Array<{ id: number; at: number; fn: () => void }> = [];
  private seq = 0;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.seq;
    this.timers.push({ id, at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}
const settle = () => new Promise((r) => setImmediate(r));

const hostReading = (time: number): HostSample => ({
  time,
  cpu: { usage: 12.5, cores: [10, 15], count: 2, loadAverage: [0.1, 0.2, 0.3] },
  memory: { total: 100, used: 40, available: 60, percent: 40 },
  swap: { total: 0, used: 0, percent: null },
  filesystems: [{ mount: '/', device: '/dev/sda1', fstype: 'ext4', total: 100, used: 25, free: 75, percent: 25 }],
  disks: [],
  network: [],
  temperatures: [],
});
const HOST_ROWS = 1 + 2 + 3 + 3 + 2 + 4; // cpu, cores, load, memory, swap used/total, disk

class FakeHost implements Sampler<HostSample> {
  readonly name = 'host';
  calls: number[] = [];
  constructor(private readonly clock: FakeClock) {}
  async sample(): Promise<HostSample> {
    this.calls.push(this.clock.now());
    return hostReading(this.clock.now());
  }
}

/** A GPU sampler that hangs until aborted, then takes `exitDelay` ms more to settle (a process being reaped). */
class HangingGpu implements Sampler<GpuSample> {
  readonly name = 'gpu';
  started = 0;
  constructor(
    private readonly clock: FakeClock,
    private readonly exitDelay = 0,
    private readonly hang = true,
  ) {}
  sample(signal: AbortSignal): Promise<GpuSample> {
    this.started++;
    if (!this.hang) return Promise.resolve({ time: this.clock.now(), gpus: [] });
    return new Promise((_, reject) =>
      signal.addEventListener('abort', () => this.clock.setTimeout(() => reject(new Error('killed')), this.exitDelay)),
    );
  }
}

/** A collector of a fake host whose persists call `write`, as the `collector-persist` job does. */
function persistingCollector(clock: FakeClock, write: (b: PointBatch) => Promise<void>): Collector {
  const collector: Collector = new Collector(
    { host: new FakeHost(clock), gpu: new HangingGpu(clock, 0, false) },
    settings(),
    () => collector.persistWith(write),
    clock,
  );
  return collector;
}

const settings = (over: Partial<CollectorSettings> = {}): CollectorSettings => ({
  host: 'h1',
  liveMs: 5_000,
  persistMs: 30_000,
  bufferMaxPoints: 100_000,
  retentionDays: 7,
  ...over,
});

describe('collector cadence (fake timers)', () => {
  it('samples every 5 s and asks for a persist every 30 s; each persist writes what was gathered since the last', async () => {
    const clock = new FakeClock();
    const host = new FakeHost(clock);
    const written: PointBatch[] = [];
    const persistTimes: number[] = [];
    const collector: Collector = new Collector(
      { host, gpu: new HangingGpu(clock, 0, false) },
      settings(),
      async () => {
        persistTimes.push(clock.now());
        await collector.persistWith(async (b) => void written.push(b));
      },
      clock,
    );
    const t0 = clock.now();
    collector.start(1_000);
    await clock.advance(61_000);
    assert.deepEqual(
      host.calls.map((t) => t - t0),
      [1_000, 6_000, 11_000, 16_000, 21_000, 26_000, 31_000, 36_000, 41_000, 46_000, 51_000, 56_000, 61_000],
    );
    assert.deepEqual(
      persistTimes.map((t) => t - t0),
      [30_000, 60_000],
    );
    assert.deepEqual(
      written.map((b) => b.length),
      [6 * HOST_ROWS, 6 * HOST_ROWS],
    );
    assert.deepEqual(
      [...new Set(written[1].times)].map((t) => t - t0),
      [31_000, 36_000, 41_000, 46_000, 51_000, 56_000],
    );
    assert.equal(written[0].series[0].source, 'h1');
    assert.equal(collector.buffer.size, HOST_ROWS, 'the sample at 61 s waits for the next persist');
    collector.stop();
    await clock.advance(60_000);
    assert.equal(host.calls.length, 13, 'stopped');
  });

  it('a hung GPU sampler is cut off within the interval, never overlaps itself, and never delays the host', async () => {
    const clock = new FakeClock();
    const host = new FakeHost(clock);
    const gpu = new HangingGpu(clock, 7_000); // takes 7 s to die after the kill
    const collector = new Collector({ host, gpu }, settings(), async () => undefined, clock);
    const t0 = clock.now();
    collector.start(5_000);
    await clock.advance(5_000);
    assert.equal(host.calls.length, 1, 'the host sample is taken at once');
    assert.ok(collector.latestHost, 'and is in the live cache before the GPU poll ends');
    await clock.advance(4_000); // the GPU poll is cut off at 80% of 5 s
    const [, gpuState] = collector.samplerStates();
    assert.equal(gpuState.timeouts, 1);
    assert.match(gpuState.reason!, /no answer within 4000 ms/);
    await clock.advance(6_000); // t = 15 s: the killed sampler settles only at 9 + 7 = 16 s
    assert.equal(gpu.started, 1, 'no second nvidia-smi while the first is still exiting');
    assert.equal(collector.samplerStates()[1].overlaps_skipped, 2, 'the polls at 10 s and 15 s were skipped');
    await clock.advance(5_000);
    assert.equal(gpu.started, 2, 'at 20 s the GPU is polled again');
    assert.deepEqual(
      host.calls.map((t) => t - t0),
      [5_000, 10_000, 15_000, 20_000],
    );
  });

  it('new intervals apply at once without a restart', async () => {
    const clock = new FakeClock();
    const host = new FakeHost(clock);
    let persists = 0;
    const collector = new Collector(
      { host, gpu: new HangingGpu(clock, 0, false) },
      settings(),
      async () => void persists++,
      clock,
    );
    const t0 = clock.now();
    collector.start(1_000);
    await clock.advance(12_000); // polls at 1 s, 6 s, 11 s
    collector.update(settings({ liveMs: 2_000, persistMs: 10_000 }));
    await clock.advance(10_000);
    assert.deepEqual(
      host.calls.map((t) => t - t0),
      [1_000, 6_000, 11_000, 14_000, 16_000, 18_000, 20_000, 22_000],
    );
    assert.equal(persists, 1, 'persist re-armed to 10 s from the change');
  });

  it('keeps samples while the database is unreachable and writes them all when it is back', async () => {
    const clock = new FakeClock();
    let down = true;
    const stored: number[] = [];
    const collector = persistingCollector(clock, async (b) => {
      if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      stored.push(...b.times);
    });
    collector.start(1_000);
    await clock.advance(91_000); // three failed persists
    assert.equal(collector.stats.persist_failures, 3);
    assert.equal(collector.buffer.size, 19 * HOST_ROWS);
    assert.match(collector.stats.last_persist_error!, /ECONNREFUSED/);
    down = false;
    await clock.advance(30_000); // the persist at 120 s writes the samples of 1 s … 116 s
    assert.equal(stored.length, 24 * HOST_ROWS, 'every sample of the outage, once');
    assert.equal(new Set(stored).size, 24);
    assert.equal(collector.buffer.size, HOST_ROWS, 'the 121 s sample waits for the next persist');
    assert.equal(collector.stats.last_persist_error, null);
  });
});

describe('collector refused by the writer', () => {
  it('drops a chunk refused for good (4xx) and goes on, where a 503 keeps it for the next persist', async () => {
    const clock = new FakeClock();
    let answer: ApiError | null = new ApiError(422, 'UNPROCESSABLE_ENTITY', 'Series limit reached (MAX_SERIES)');
    const stored: number[] = [];
    const collector = persistingCollector(clock, async (b) => {
      if (answer) throw answer;
      stored.push(...b.times);
    });
    collector.start(1_000);
    await clock.advance(31_000); // the persist at 30 s: refused for good
    assert.equal(collector.buffer.size, HOST_ROWS, 'only the 31 s sample is left: the refused ones are dropped');
    assert.equal(collector.stats.points_refused, 6 * HOST_ROWS);
    assert.match(collector.stats.last_persist_error!, /refused and dropped: Series limit/);
    assert.equal(collector.stats.persist_failures, 0);
    answer = serviceUnavailable('Ingest buffer is full; retry shortly', 1); // worth retrying: kept
    await clock.advance(30_000);
    assert.equal(collector.buffer.size, 7 * HOST_ROWS);
    assert.equal(collector.stats.persist_failures, 1);
    answer = null;
    await clock.advance(30_000);
    assert.equal(stored.length, 12 * HOST_ROWS, 'every sample after the refused chunk, once');
    assert.equal(collector.stats.last_persist_error, null);
  });
});

describe('collector without nvidia-smi', () => {
  it('the GPU is "not available", asked again only a minute later, and the host sampler goes on', async () => {
    const clock = new FakeClock();
    const host = new FakeHost(clock);
    const missing = new GpuSampler(() => join(dir, 'no-such-nvidia-smi'), clock.now);
    let gpuCalls = 0;
    const gpu: Sampler<GpuSample> = { name: 'gpu', sample: (signal) => (gpuCalls++, missing.sample(signal)) };
    const collector = new Collector({ host, gpu }, settings(), async () => undefined, clock);
    await collector.pollOnce();
    const [hostState, gpuState] = collector.samplerStates();
    assert.equal(hostState.samples, 1);
    assert.ok(collector.latestHost);
    assert.equal(gpuState.available, false);
    assert.match(gpuState.reason!, /nvidia-smi not found .*no-such-nvidia-smi/);
    assert.equal(gpuState.failures, 0, 'not a fault: there is nothing to read');
    assert.equal(gpuState.next_attempt_at, new Date(clock.now() + GPU_RETRY_MS).toISOString());
    assert.equal(collector.latestGpu, undefined);
    for (let i = 0; i < 3; i++) {
      clock.t += 5_000;
      await collector.pollOnce();
    }
    assert.equal(host.calls.length, 4, 'the host is sampled at every poll');
    assert.equal(gpuCalls, 1, 'nvidia-smi is not looked for again within the minute');
    assert.equal(collector.buffer.size, 4 * HOST_ROWS);
    clock.t += GPU_RETRY_MS;
    await collector.pollOnce();
    assert.equal(gpuCalls, 2);
  });
});

describe('collector with one GPU lost', () => {
  it('the GPUs that answered are stored at every poll, and the state says what nvidia-smi said', async () => {
    const clock = new FakeClock();
    const host = new FakeHost(clock);
    const gpu = new GpuSampler(() => fakeSmi('lost-collector', replay('one-lost.txt', 15)), clock.now);
    const collector = new Collector({ host, gpu }, settings(), async () => undefined, clock);
    await collector.pollOnce();
    clock.t += 5_000;
    await collector.pollOnce();
    const [, gpuState] = collector.samplerStates();
    assert.equal(gpuState.available, true);
    assert.equal(gpuState.samples, 2, 'polled again at the next tick, not a minute later');
    assert.equal(gpuState.next_attempt_at, null);
    assert.match(gpuState.reason!, /exited with 15: .*GPU is lost/);
    assert.equal(collector.latestGpu?.gpus.length, 3);
    assert.equal(collector.buffer.size, 2 * HOST_ROWS + 2 * 3 * 7, 'seven figures for each of the three GPUs, twice');
  });
});

describe('collector health', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const at = (over: Partial<CollectorHealthInput>) =>
    collectorHealth({
      enabled: true,
      cadence: { startedAt: t0, cadenceFrom: t0 },
      lastSampleAt: null,
      liveMs: 5_000,
      persistFailing: false,
      now: t0,
      ...over,
    }).status;

  it('starting until the first sample, not stalled', () => {
    assert.equal(at({}), 'starting');
    assert.equal(at({ now: t0 + 17_000 }), 'starting', '3 intervals + 2 s after the start');
    assert.equal(at({ cadence: null }), 'starting', 'enabled, still being started');
    assert.equal(at({ enabled: false }), 'disabled');
  });

  it('stalled only past 3 live intervals + 2 s since the last sample', () => {
    const last = t0 + 1_000;
    assert.equal(at({ lastSampleAt: last, now: last + 17_000 }), 'running');
    assert.equal(at({ lastSampleAt: last, now: last + 17_001 }), 'stalled');
    assert.equal(
      at({ lastSampleAt: last, now: last + 17_001, liveMs: 60_000 }),
      'running',
      'the threshold follows the live interval',
    );
    const health = collectorHealth({
      enabled: true,
      cadence: { startedAt: t0, cadenceFrom: t0 },
      lastSampleAt: last,
      liveMs: 5_000,
      persistFailing: false,
      now: last + 30_000,
    });
    assert.deepEqual(health, { status: 'stalled', level: 'degraded' });
  });

  it('a first sample that never comes is stalled too', () => {
    assert.equal(at({ now: t0 + 17_001 }), 'stalled');
  });

  it('after a restart, a sample from before the stop does not count', () => {
    const restart = t0 + 3_600_000;
    const cadence = { startedAt: restart, cadenceFrom: restart };
    assert.equal(at({ cadence, lastSampleAt: t0, now: restart + 1_000 }), 'starting');
    assert.equal(at({ cadence, lastSampleAt: restart + 1_000, now: restart + 2_000 }), 'running');
  });

  it('a new, shorter live interval counts from when it took effect', () => {
    const change = t0 + 600_000;
    assert.equal(
      at({
        cadence: { startedAt: t0, cadenceFrom: change },
        lastSampleAt: change - 50_000,
        liveMs: 2_000,
        now: change + 1_000,
      }),
      'running',
    );
    assert.equal(
      at({
        cadence: { startedAt: t0, cadenceFrom: change },
        lastSampleAt: change - 50_000,
        liveMs: 2_000,
        now: change + 8_001,
      }),
      'stalled',
    );
  });

  it('a failing persist is degraded', () => {
    assert.equal(at({ lastSampleAt: t0, persistFailing: true }), 'persist_failing');
  });

  it('the collector says when it started and when its interval last changed', async () => {
    const clock = new FakeClock();
    const collector = new Collector(
      { host: new FakeHost(clock), gpu: new HangingGpu(clock, 0, false) },
      settings(),
      async () => undefined,
      clock,
    );
    assert.equal(collector.cadence, null);
    const start = clock.now();
    collector.start(1_000);
    assert.deepEqual(collector.cadence, { startedAt: start, cadenceFrom: start });
    await clock.advance(10_000);
    collector.update(settings({ liveMs: 2_000 }));
    assert.deepEqual(collector.cadence, { startedAt: start, cadenceFrom: start + 10_000 });
    collector.stop();
    assert.equal(collector.cadence, null);
  });
});

describe('sample buffer', () => {
  const rows = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ metric: 'm', tags: { i: String(i % 3) }, unit: 'u', value: i }));

  it('is bounded: the oldest rows are dropped and counted', () => {
    const b = new SampleBuffer(1_000);
    for (let t = 0; t < 500; t++) b.add(rows(3), t);
    assert.equal(b.size, 1_000);
    assert.equal(b.dropped, 500);
    const { batch } = b.take('s', 10_000);
    assert.equal(batch.length, 1_000);
    // 1500 rows were added, three per time step: the newest 1000 are rows 500…1499, times 166…499.
    assert.equal(Math.min(...batch.times), 166);
    assert.equal(Math.max(...batch.times), 499);
    assert.equal(batch.series.length, 3);
  });

  it('releases exactly what was taken, even if more arrived meanwhile', () => {
    const b = new SampleBuffer(100_000);
    b.add(rows(10), 1);
    const { upTo } = b.take('s', 1_000);
    b.add(rows(5), 2);
    b.release(upTo);
    assert.equal(b.size, 5);
    assert.deepEqual([...b.take('s', 1_000).batch.times], [2, 2, 2, 2, 2]);
  });

  it('leaves out rows older than the retention (counted as expired)', () => {
    const b = new SampleBuffer(1_000);
    b.add(rows(4), 10);
    b.add(rows(2), 20);
    const r = b.take('s', 1_000, 15);
    assert.equal(r.batch.length, 2);
    assert.equal(r.expired, 4);
  });

  it('shrinks to a new bound by dropping the oldest', () => {
    const b = new SampleBuffer(10_000);
    for (let t = 0; t < 100; t++) b.add(rows(30), t);
    b.resize(1_000);
    assert.equal(b.size, 1_000);
    assert.equal(b.dropped, 2_000);
    assert.equal(Math.min(...b.take('s', 5_000).batch.times), 66, 'rows 2000…2999 of 30 per time step');
  });
});
