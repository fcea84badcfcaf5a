import { toIso } from '../common/time.js';
import type { SamplerState } from './collector.js';
import type { GpuSample, HostSample } from './samples.js';

/** The reply shapes of the references, built from the live cache. Pure. */

const GIB = 1024 ** 3;
const gib = (bytes: number) => Math.round((bytes / GIB) * 100) / 100;
const mean = (xs: number[]) => (xs.length ? Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 100) / 100 : null);
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : null);

/** The filesystem the reference's single `disk` means: the root one, else the first. */
function mainFilesystem(h: HostSample) {
  return h.filesystems.find((f) => f.mount === '/') ?? h.filesystems[0];
}

const MIB = 1024 * 1024;

/**
 * collector-api.md (first half), GET /metrics, its `system` part: CPU in percent, memory and the
 * root filesystem used in MiB (the reference gives bare numbers, 1024 and 2048: MiB is read here),
 * network bytes since boot over every interface. Nulls before the first sample.
 */
export function collectorApiSystem(host: HostSample | undefined) {
  const fs = host && mainFilesystem(host);
  const mib = (bytes: number | undefined) => (bytes === undefined ? null : Math.round(bytes / MIB));
  return {
    cpu_usage: host?.cpu.usage ?? null,
    memory_usage: mib(host?.memory.used),
    disk_usage: mib(fs?.used),
    network_io: {
      bytes_sent: host ? host.network.reduce((s, n) => s + n.bytesSent, 0) : null,
      bytes_received: host ? host.network.reduce((s, n) => s + n.bytesReceived, 0) : null,
    },
  };
}

/** host-metrics-collector.md, GET /metrics: one number per resource. */
export function collectorMetrics(host: HostSample, gpu: GpuSample | undefined, hostName: string) {
  const fs = mainFilesystem(host);
  const gpuUtil = (gpu?.gpus ?? []).map((g) => g.utilization).filter((v): v is number => v !== null);
  const hostTemps = host.temperatures.map((t) => t.celsius);
  const gpuTemps = (gpu?.gpus ?? []).map((g) => g.temperature).filter((v): v is number => v !== null);
  return {
    cpu: host.cpu.usage,
    ram: host.memory.percent,
    gpu: mean(gpuUtil),
    temperature: max(hostTemps) ?? max(gpuTemps),
    disk: fs
      ? { used: fs.used, free: fs.free, total: fs.total, percent: fs.percent }
      : { used: null, free: null, total: null, percent: null },
    timestamp: toIso(host.time),
    host: hostName,
  };
}

/** host-metrics-collector.md, GET /gpu: every GPU's figures. */
export function collectorGpus(gpu: GpuSample | undefined, state: SamplerState, hostName: string) {
  return {
    available: state.available && gpu !== undefined,
    reason: state.reason,
    count: gpu?.gpus.length ?? 0,
    gpus: (gpu?.gpus ?? []).map((g) => ({
      index: g.index,
      uuid: g.uuid,
      name: g.name,
      utilization: g.utilization,
      memory_utilization: g.memoryUtilization,
      memory_used: g.memoryUsed,
      memory_total: g.memoryTotal,
      memory_percent:
        g.memoryUsed !== null && g.memoryTotal ? Math.round((g.memoryUsed / g.memoryTotal) * 10_000) / 100 : null,
      temperature: g.temperature,
      power_draw: g.powerDraw,
      sm_clock: g.smClock,
    })),
    timestamp: gpu ? toIso(gpu.time) : null,
    last_attempt_error: state.available ? null : state.reason,
    host: hostName,
  };
}

/** monitoring-api.md, GET /metrics: the system shape (sizes in GiB, network totals since boot). */
export function monitoringMetrics(host: HostSample) {
  const fs = mainFilesystem(host);
  const sum = (f: (n: HostSample['network'][number]) => number) => host.network.reduce((s, n) => s + f(n), 0);
  return {
    system: {
      cpu: { usage_percent: host.cpu.usage, cores: host.cpu.count, load_average: host.cpu.loadAverage },
      memory: {
        total_gb: gib(host.memory.total),
        used_gb: gib(host.memory.used),
        free_gb: gib(host.memory.available),
        usage_percent: host.memory.percent,
      },
      disk: fs
        ? { total_gb: gib(fs.total), used_gb: gib(fs.used), free_gb: gib(fs.free), usage_percent: fs.percent }
        : { total_gb: null, used_gb: null, free_gb: null, usage_percent: null },
      network: {
        bytes_sent: sum((n) => n.bytesSent),
        bytes_received: sum((n) => n.bytesReceived),
        packets_sent: sum((n) => n.packetsSent),
        packets_received: sum((n) => n.packetsReceived),
      },
    },
    timestamp: toIso(host.time),
  };
}
