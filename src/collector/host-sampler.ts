import { readdir, readFile, statfs } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import {
  cpuPercent,
  fsUsage,
  parseDiskstats,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  parseProcStat,
  ProcStat,
  ratePerSecond,
  round2,
  selectFilesystems,
} from './proc.js';
import type { FilesystemSample, HostSample, Sampler, TemperatureSample } from './samples.js';
import { SamplerUnavailable } from './samples.js';

const SENSOR_REDISCOVERY_MS = 10 * 60_000;

interface Previous {
  time: number;
  stat: ProcStat;
  disks: Map<string, { r: number; w: number }>;
  net: Map<string, { bs: number; br: number; ps: number; pr: number }>;
}

/**
 * CPU, load, memory, swap, filesystems, disk and network I/O, temperatures, read straight from
 * /proc and /sys with asynchronous reads (a handful of small files and one statfs per filesystem
 * per sample; no child processes). Rates come from the difference with the previous sample.
 * Linux only; elsewhere it reports itself unavailable.
 */
export class HostSampler implements Sampler<HostSample> {
  readonly name = 'host';
  private prev?: Previous;
  private sensors?: { files: Array<{ sensor: string; path: string }>; at: number };

  constructor(
    private readonly roots = { proc: '/proc', sys: '/sys' },
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads the CPU counters once, so that the first sample already has a CPU usage. */
  async prime(): Promise<void> {
    try {
      this.prev = { time: this.now(), stat: parseProcStat(await this.read('stat')), disks: new Map(), net: new Map() };
    } catch {
      /* sample() will say what is wrong */
    }
  }

  async sample(signal: AbortSignal): Promise<HostSample> {
    if (process.platform !== 'linux')
      throw new SamplerUnavailable(`host metrics are read from /proc: not available on ${process.platform}`, 3_600_000);
    const opts = { signal };
    const time = this.now();
    const [statText, memText, mountsText, diskText, netText] = await Promise.all([
      this.read('stat', opts),
      this.read('meminfo', opts),
      this.read('self/mounts', opts),
      this.read('diskstats', opts).catch(() => ''),
      this.read('net/dev', opts).catch(() => ''),
    ]);
    const stat = parseProcStat(statText);
    const mem = parseMeminfo(memText);
    const [filesystems, temperatures] = await Promise.all([this.filesystems(mountsText), this.temperatures(time)]);
    const prev = this.prev;
    const dt = prev ? (time - prev.time) / 1000 : 0;

    const diskNow = new Map<string, { r: number; w: number }>();
    const disks = parseDiskstats(diskText).map((d) => {
      diskNow.set(d.device, { r: d.readBytes, w: d.writeBytes });
      const p = prev?.disks.get(d.device);
      return {
        device: d.device,
        readBytesTotal: d.readBytes,
        writeBytesTotal: d.writeBytes,
        readBytesPerSec: ratePerSecond(p?.r, d.readBytes, dt),
        writeBytesPerSec: ratePerSecond(p?.w, d.writeBytes, dt),
      };
    });
    const netNow = new Map<string, { bs: number; br: number; ps: number; pr: number }>();
    const network = parseNetDev(netText).map((n) => {
      netNow.set(n.iface, { bs: n.bytesSent, br: n.bytesReceived, ps: n.packetsSent, pr: n.packetsReceived });
      const p = prev?.net.get(n.iface);
      return {
        iface: n.iface,
        bytesSent: n.bytesSent,
        bytesReceived: n.bytesReceived,
        packetsSent: n.packetsSent,
        packetsReceived: n.packetsReceived,
        bytesSentPerSec: ratePerSecond(p?.bs, n.bytesSent, dt),
        bytesReceivedPerSec: ratePerSecond(p?.br, n.bytesReceived, dt),
        packetsSentPerSec: ratePerSecond(p?.ps, n.packetsSent, dt),
        packetsReceivedPerSec: ratePerSecond(p?.pr, n.packetsReceived, dt),
      };
    });
    this.prev = { time, stat, disks: diskNow, net: netNow };
    const cores = stat.cores.map((c, i) => cpuPercent(prev?.stat.cores[i], c));
    const [l1, l5, l15] = loadavg();
    return {
      time,
      cpu: {
        usage: cpuPercent(prev?.stat.total, stat.total),
        cores,
        count: stat.cores.length || cpus().length,
        loadAverage: [round2(l1), round2(l5), round2(l15)],
      },
      memory: { total: mem.total, used: mem.used, available: mem.available, percent: mem.percent },
      swap: { total: mem.swapTotal, used: mem.swapUsed, percent: mem.swapPercent },
      filesystems,
      disks,
      network,
      temperatures,
    };
  }

  private read(file: string, opts?: { signal: AbortSignal }): Promise<string> {
    return readFile(join(this.roots.proc, file), { encoding: 'utf8', ...opts });
  }

  private async filesystems(mountsText: string): Promise<FilesystemSample[]> {
    const out = await Promise.all(
      selectFilesystems(parseMounts(mountsText)).map(async (m) => {
        try {
          const u = fsUsage(await statfs(m.mount));
          return u.total > 0 ? { mount: m.mount, device: m.device, fstype: m.fstype, ...u } : undefined;
        } catch {
          return undefined; // unmounted meanwhile, or a stale network mount: leave it out of this sample
        }
      }),
    );
    return out.filter((x): x is FilesystemSample => x !== undefined);
  }

  /** hwmon sensors where the kernel has drivers for them, else ACPI thermal zones; none in most VMs. */
  private async temperatures(now: number): Promise<TemperatureSample[]> {
    if (!this.sensors || now - this.sensors.at > SENSOR_REDISCOVERY_MS)
      this.sensors = { files: await this.discoverSensors(), at: now };
    const out: TemperatureSample[] = [];
    for (const s of this.sensors.files) {
      try {
        const milli = Number((await readFile(s.path, 'utf8')).trim());
        if (Number.isFinite(milli) && milli > -50_000 && milli < 200_000)
          out.push({ sensor: s.sensor, celsius: round2(milli / 1000) });
      } catch {
        /* a sensor that stopped answering */
      }
    }
    return out;
  }

  private async discoverSensors(): Promise<Array<{ sensor: string; path: string }>> {
    const files: Array<{ sensor: string; path: string }> = [];
    const text = (p: string) =>
      readFile(p, 'utf8').then(
        (s) => s.trim(),
        () => undefined,
      );
    const hwmon = join(this.roots.sys, 'class/hwmon');
    for (const dir of await readdir(hwmon).catch(() => [] as string[])) {
      const base = join(hwmon, dir);
      const chip = (await text(join(base, 'name'))) ?? dir;
      for (const f of await readdir(base).catch(() => [] as string[])) {
        const m = /^temp(\d+)_input$/.exec(f);
        if (!m) continue;
        const label = await text(join(base, `temp${m[1]}_label`));
        files.push({ sensor: `${chip}/${label ?? `temp${m[1]}`}`, path: join(base, f) });
      }
    }
    if (files.length > 0) return files;
    const thermal = join(this.roots.sys, 'class/thermal');
    for (const dir of await readdir(thermal).catch(() => [] as string[])) {
      if (!dir.startsWith('thermal_zone')) continue;
      const type = (await text(join(thermal, dir, 'type'))) ?? dir;
      files.push({ sensor: `${type}/${dir}`, path: join(thermal, dir, 'temp') });
    }
    return files;
  }
}
