import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseNvidiaSmi } from '../../src/collector/nvidia-smi.js';
import {
  cpuPercent,
  fsUsage,
  parseDiskstats,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  parseProcStat,
  ratePerSecond,
  selectFilesystems,
} from '../../src/collector/proc.js';
import { gpuPoints, hostPoints } from '../../src/collector/to-points.js';
import { collectorMetrics, monitoringMetrics } from '../../src/collector/views.js';
import type { HostSample } from '../../src/collector/samples.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const fixture = (name: string) => readFileSync(`${fixtures}${name}`, 'utf8');
const MIB = 1024 * 1024;

describe('nvidia-smi output', () => {
  it('one H100: every field, memory in bytes', () => {
    const { gpus, problems } = parseNvidiaSmi(fixture('nvidia-smi/one-gpu.csv'));
    assert.deepEqual(problems, []);
    assert.deepEqual(gpus, [
      {
        index: 0,
        uuid: 'GPU-8a5b3c1e-6f2d-4b7a-9c0e-1d2f3a4b5c6d',
        name: 'NVIDIA H100 80GB HBM3',
        utilization: 37,
        memoryUtilization: 12,
        memoryUsed: 10422 * MIB,
        memoryTotal: 81559 * MIB,
        temperature: 45,
        powerDraw: 132.45,
        smClock: 1980,
      },
    ]);
  });

  it('four A100s in index order', () => {
    const { gpus, problems } = parseNvidiaSmi(fixture('nvidia-smi/four-gpus.csv'));
    assert.deepEqual(problems, []);
    assert.deepEqual(
      gpus.map((g) => g.index),
      [0, 1, 2, 3],
    );
    assert.deepEqual(
      gpus.map((g) => g.utilization),
      [100, 0, 58, 3],
    );
    assert.equal(gpus[2].powerDraw, 301.5);
    assert.equal(new Set(gpus.map((g) => g.uuid)).size, 4);
  });

  it('[N/A], [Not Supported], [Unknown Error] and bare N/A become null; the GPU is still there', () => {
    const { gpus, problems } = parseNvidiaSmi(fixture('nvidia-smi/placeholders.csv'));
    assert.deepEqual(problems, []);
    assert.equal(gpus.length, 2);
    assert.equal(gpus[0].utilization, null);
    assert.equal(gpus[0].memoryUtilization, null);
    assert.equal(gpus[0].powerDraw, null);
    assert.equal(gpus[0].memoryUsed, 210 * MIB);
    assert.equal(gpus[0].smClock, 953);
    assert.deepEqual([gpus[1].temperature, gpus[1].powerDraw, gpus[1].smClock], [null, null, null]);
  });

  it('a product name with a comma keeps its comma', () => {
    const { gpus } = parseNvidiaSmi(fixture('nvidia-smi/comma-name.csv'));
    assert.equal(gpus[0].name, 'NVIDIA RTX A6000, Ada Generation');
    assert.equal(gpus[0].utilization, 7);
    assert.equal(gpus[0].smClock, 300);
  });

  it('garbage gives no GPU and says why', () => {
    const { gpus, problems } = parseNvidiaSmi(fixture('nvidia-smi/garbage.txt'));
    assert.equal(gpus.length, 0);
    assert.equal(problems.length, 2);
    assert.match(problems[0], /line 1: expected 10 fields/);
  });

  it('a truncated line is skipped, the complete one kept', () => {
    const { gpus, problems } = parseNvidiaSmi(fixture('nvidia-smi/truncated.csv'));
    assert.equal(gpus.length, 1);
    assert.match(problems[0], /^line 2/);
  });

  it('a field that is neither a number nor a placeholder is null and reported', () => {
    const { gpus, problems } = parseNvidiaSmi('0, GPU-x, T4, busy, 1, 2, 3, 4, 5, 6\n');
    assert.equal(gpus[0].utilization, null);
    assert.match(problems[0], /utilization.gpu is not a number/);
  });
});

describe('/proc parsers', () => {
  it('CPU usage between two readings, overall and per core (iowait is idle, steal is busy)', () => {
    const a = parseProcStat(fixture('proc/stat-a.txt'));
    const b = parseProcStat(fixture('proc/stat-b.txt'));
    // total: busy 1500 → 2550 (+1050), all 10000 → 11450 (+1450)
    assert.equal(cpuPercent(a.total, b.total), Math.round((1050 / 1450) * 10_000) / 100);
    assert.equal(b.cores.length, 2);
    assert.equal(cpuPercent(a.cores[0], b.cores[0]), Math.round((700 / 750) * 10_000) / 100);
    assert.equal(cpuPercent(a.total, a.total), null);
    assert.equal(cpuPercent(undefined, b.total), null);
    assert.equal(cpuPercent(b.total, a.total), null, 'counters going back (a reset) give no figure');
  });

  it('memory used is total minus available; swap from SwapTotal/SwapFree', () => {
    const m = parseMeminfo(fixture('proc/meminfo.txt'));
    assert.equal(m.total, 16384000 * 1024);
    assert.equal(m.used, (16384000 - 4096000) * 1024);
    assert.equal(m.percent, 75);
    assert.equal(m.swapUsed, (2097152 - 1572864) * 1024);
    assert.equal(m.swapPercent, 25);
    assert.throws(() => parseMeminfo('nothing'), /MemTotal/);
  });

  it('filesystems: the overlay root kept, bind mounts of one device once, pseudo filesystems out, escapes decoded', () => {
    const fs = selectFilesystems(parseMounts(fixture('proc/mounts.txt')));
    assert.deepEqual(
      fs.map((f) => f.mount),
      ['/', '/data', '/mnt/backup disk'],
    );
    assert.equal(fs[1].device, '/dev/nvme0n1p2');
  });

  it('filesystem usage as df computes it', () => {
    const u = fsUsage({ bsize: 4096, blocks: 1000, bfree: 300, bavail: 250 });
    assert.deepEqual(u, {
      total: 4096000,
      used: 700 * 4096,
      free: 250 * 4096,
      percent: Math.round((700 / 950) * 10_000) / 100,
    });
  });

  it('disk I/O of whole disks only, in bytes (512-byte sectors)', () => {
    const d = parseDiskstats(fixture('proc/diskstats.txt'));
    assert.deepEqual(
      d.map((x) => x.device),
      ['nvme0n1', 'sda', 'dm-0'],
    );
    assert.equal(d[0].readBytes, 9000000 * 512);
    assert.equal(d[0].writeBytes, 16000000 * 512);
  });

  it('network counters without loopback and veth', () => {
    const n = parseNetDev(fixture('proc/net-dev.txt'));
    assert.deepEqual(
      n.map((x) => x.iface),
      ['eth0', 'wlan0'],
    );
    assert.deepEqual(n[0], {
      iface: 'eth0',
      bytesReceived: 708365158,
      packetsReceived: 20045,
      bytesSent: 1858820,
      packetsSent: 13782,
    });
  });

  it('rates: none on the first reading or after a counter reset', () => {
    assert.equal(ratePerSecond(undefined, 100, 5), null);
    assert.equal(ratePerSecond(100, 600, 5), 100);
    assert.equal(ratePerSecond(600, 100, 5), null);
    assert.equal(ratePerSecond(100, 200, 0), null);
  });
});

const sample: HostSample = {
  time: Date.parse('2026-01-15T10:30:00Z'),
  cpu: { usage: 45.2, cores: [40, null], count: 2, loadAverage: [2.1, 2.5, 2.3] },
  memory: { total: 32 * 1024 ** 3, used: 18.5 * 1024 ** 3, available: 13.5 * 1024 ** 3, percent: 57.81 },
  swap: { total: 0, used: 0, percent: null },
  filesystems: [
    { mount: '/data', device: '/dev/sdb1', fstype: 'xfs', total: 10, used: 5, free: 5, percent: 50 },
    {
      mount: '/',
      device: '/dev/sda1',
      fstype: 'ext4',
      total: 536870912000,
      used: 107374182400,
      free: 429496729600,
      percent: 20,
    },
  ],
  disks: [{ device: 'sda', readBytesTotal: 1, writeBytesTotal: 2, readBytesPerSec: null, writeBytesPerSec: 4096 }],
  network: [
    {
      iface: 'eth0',
      bytesSent: 1000,
      bytesReceived: 2000,
      packetsSent: 10,
      packetsReceived: 20,
      bytesSentPerSec: 1,
      bytesReceivedPerSec: 2,
      packetsSentPerSec: 0.1,
      packetsReceivedPerSec: 0.2,
    },
    {
      iface: 'eth1',
      bytesSent: 1,
      bytesReceived: 2,
      packetsSent: 3,
      packetsReceived: 4,
      bytesSentPerSec: null,
      bytesReceivedPerSec: null,
      packetsSentPerSec: null,
      packetsReceivedPerSec: null,
    },
  ],
  temperatures: [
    { sensor: 'coretemp/Package id 0', celsius: 55 },
    { sensor: 'nvme/Composite', celsius: 41 },
  ],
};

describe('samples as series and as the reference shapes', () => {
  it('host series carry host and the distinguishing tag; unreadable values are left out', () => {
    const rows = hostPoints(sample, 'gpu-box-1');
    assert.ok(rows.every((r) => r.tags.host === 'gpu-box-1'));
    assert.deepEqual(
      rows.filter((r) => r.metric === 'host.cpu_core_usage').map((r) => r.tags.core),
      ['0'],
      'core 1 had no reading',
    );
    assert.equal(rows.filter((r) => r.metric === 'host.swap_usage').length, 0);
    assert.deepEqual(rows.find((r) => r.metric === 'host.disk_usage' && r.tags.mount === '/')?.tags, {
      host: 'gpu-box-1',
      mount: '/',
      device: '/dev/sda1',
    });
    assert.equal(rows.filter((r) => r.metric === 'host.disk_read_bytes_per_second').length, 0);
    assert.equal(rows.find((r) => r.metric === 'host.disk_write_bytes_per_second')?.unit, 'B/s');
    assert.equal(rows.filter((r) => r.tags.interface === 'eth1').length, 0);
    assert.equal(rows.find((r) => r.metric === 'host.temperature_celsius')?.tags.sensor, 'coretemp/Package id 0');
  });

  it('GPU series per GPU with index, uuid and name', () => {
    const { gpus } = parseNvidiaSmi(fixture('nvidia-smi/placeholders.csv'));
    const rows = gpuPoints({ time: 0, gpus }, 'h');
    const k80 = rows.filter((r) => r.tags.gpu === '1');
    assert.deepEqual(k80.map((r) => r.metric).sort(), [
      'host.gpu_memory_total_bytes',
      'host.gpu_memory_used_bytes',
      'host.gpu_memory_utilization',
      'host.gpu_utilization',
    ]);
    assert.deepEqual(k80[0].tags, {
      host: 'h',
      gpu: '1',
      gpu_uuid: 'GPU-0f0e0d0c-bbbb-4bbb-8ccc-0d0e0f101113',
      gpu_name: 'Tesla K80',
    });
  });

  it('GET /collector/metrics shape: root filesystem, mean GPU use, hottest sensor', () => {
    const { gpus } = parseNvidiaSmi(fixture('nvidia-smi/four-gpus.csv'));
    const m = collectorMetrics(sample, { time: 0, gpus }, 'h');
    assert.deepEqual(m, {
      cpu: 45.2,
      ram: 57.81,
      gpu: 40.25,
      temperature: 55,
      disk: { used: 107374182400, free: 429496729600, total: 536870912000, percent: 20 },
      timestamp: '2026-01-15T10:30:00.000Z',
      host: 'h',
    });
    const noGpu = collectorMetrics({ ...sample, temperatures: [] }, undefined, 'h');
    assert.equal(noGpu.gpu, null);
    assert.equal(noGpu.temperature, null);
    assert.equal(
      collectorMetrics({ ...sample, temperatures: [] }, { time: 0, gpus }, 'h').temperature,
      71,
      'GPU temperature when the host has no sensor',
    );
  });

  it('GET /monitoring/metrics shape: GiB and network totals', () => {
    const m = monitoringMetrics(sample);
    assert.deepEqual(m.system.cpu, { usage_percent: 45.2, cores: 2, load_average: [2.1, 2.5, 2.3] });
    assert.deepEqual(m.system.memory, { total_gb: 32, used_gb: 18.5, free_gb: 13.5, usage_percent: 57.81 });
    assert.equal(m.system.disk.total_gb, 500);
    assert.deepEqual(m.system.network, {
      bytes_sent: 1001,
      bytes_received: 2002,
      packets_sent: 13,
      packets_received: 24,
    });
  });
});
