import type { GpuSample, HostSample } from './samples.js';

/**
 * Samples as ordinary series: source = the host name, tag `host` on every series, and `core`,
 * `mount`/`device`, `interface`, `sensor`, `gpu` where a metric has several. Pure. Values that
 * could not be read (null) are left out rather than stored as zeros.
 */

/**
 * Every collector metric is named `host.<name>` (`host.cpu_usage`), so a user's own `cpu_usage`
 * and the collector's never meet in one query, also when it gives no `source`.
 */
export const COLLECTOR_PREFIX = 'host.';
export interface PointRow {
  metric: string;
  tags: Record<string, string>;
  unit: string;
  value: number;
}

export function hostPoints(s: HostSample, host: string): PointRow[] {
  const rows: PointRow[] = [];
  const add = (metric: string, unit: string, value: number | null, tags: Record<string, string> = {}) => {
    if (value !== null && Number.isFinite(value))
      rows.push({ metric: COLLECTOR_PREFIX + metric, unit, value, tags: { host, ...tags } });
  };
  add('cpu_usage', 'percent', s.cpu.usage);
  s.cpu.cores.forEach((v, i) => add('cpu_core_usage', 'percent', v ?? null, { core: String(i) }));
  add('load_average_1m', 'load', s.cpu.loadAverage[0]);
  add('load_average_5m', 'load', s.cpu.loadAverage[1]);
  add('load_average_15m', 'load', s.cpu.loadAverage[2]);
  add('memory_used_bytes', 'bytes', s.memory.used);
  add('memory_total_bytes', 'bytes', s.memory.total);
  add('memory_usage', 'percent', s.memory.percent);
  add('swap_used_bytes', 'bytes', s.swap.used);
  add('swap_total_bytes', 'bytes', s.swap.total);
  add('swap_usage', 'percent', s.swap.percent);
  for (const f of s.filesystems) {
    const tags = { mount: f.mount, device: f.device };
    add('disk_used_bytes', 'bytes', f.used, tags);
    add('disk_free_bytes', 'bytes', f.free, tags);
    add('disk_total_bytes', 'bytes', f.total, tags);
    add('disk_usage', 'percent', f.percent, tags);
  }
  for (const d of s.disks) {
    add('disk_read_bytes_per_second', 'B/s', d.readBytesPerSec, { device: d.device });
    add('disk_write_bytes_per_second', 'B/s', d.writeBytesPerSec, { device: d.device });
  }
  for (const n of s.network) {
    const tags = { interface: n.iface };
    add('network_sent_bytes_per_second', 'B/s', n.bytesSentPerSec, tags);
    add('network_received_bytes_per_second', 'B/s', n.bytesReceivedPerSec, tags);
    add('network_sent_packets_per_second', 'packets/s', n.packetsSentPerSec, tags);
    add('network_received_packets_per_second', 'packets/s', n.packetsReceivedPerSec, tags);
  }
  for (const t of s.temperatures) add('temperature_celsius', 'celsius', t.celsius, { sensor: t.sensor });
  return rows;
}

export function gpuPoints(s: GpuSample, host: string): PointRow[] {
  const rows: PointRow[] = [];
  for (const g of s.gpus) {
    const tags = { host, gpu: String(g.index), gpu_uuid: g.uuid, gpu_name: g.name };
    const add = (metric: string, unit: string, value: number | null) => {
      if (value !== null && Number.isFinite(value)) rows.push({ metric: COLLECTOR_PREFIX + metric, unit, value, tags });
    };
    add('gpu_utilization', 'percent', g.utilization);
    add('gpu_memory_utilization', 'percent', g.memoryUtilization);
    add('gpu_memory_used_bytes', 'bytes', g.memoryUsed);
    add('gpu_memory_total_bytes', 'bytes', g.memoryTotal);
    add('gpu_temperature_celsius', 'celsius', g.temperature);
    add('gpu_power_draw_watts', 'watts', g.powerDraw);
    add('gpu_sm_clock_mhz', 'MHz', g.smClock);
  }
  return rows;
}
