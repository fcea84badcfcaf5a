/**
 * Parsers for the Linux files the host sampler reads (/proc/stat, /proc/meminfo, /proc/self/mounts,
 * /proc/diskstats, /proc/net/dev) and the arithmetic between two readings. Pure: text in, numbers out.
 */

/** Jiffies of one CPU line: busy and total (guest time is already inside user and nice). */
export interface CpuTimes {
  busy: number;
  total: number;
}

export interface ProcStat {
  total: CpuTimes;
  cores: CpuTimes[];
}

export function parseProcStat(text: string): ProcStat {
  let total: CpuTimes | undefined;
  const cores: CpuTimes[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const parts = line.trim().split(/\s+/);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = parts.slice(1, 9).map((x) => Number(x) || 0);
    const all = user + nice + system + idle + iowait + irq + softirq + steal;
    const times = { busy: all - idle - iowait, total: all };
    if (parts[0] === 'cpu') total = times;
    else {
      const n = Number(parts[0].slice(3));
      if (Number.isInteger(n)) cores[n] = times;
    }
  }
  if (!total) throw new Error('no cpu line in /proc/stat');
  return { total, cores };
}

/** Busy share in percent between two readings; null when no time passed (or the counters went back). */
export function cpuPercent(prev: CpuTimes | undefined, cur: CpuTimes | undefined): number | null {
  if (!prev || !cur) return null;
  const dt = cur.total - prev.total;
  const db = cur.busy - prev.busy;
  if (dt <= 0 || db < 0) return null;
  return round2(Math.min(100, (db / dt) * 100));
}

export interface MemoryInfo {
  total: number;
  available: number;
  used: number;
  percent: number | null;
  swapTotal: number;
  swapUsed: number;
  swapPercent: number | null;
}

/** Bytes. Used memory is total − available (what `free` and psutil's percent count as in use). */
export function parseMeminfo(text: string): MemoryInfo {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) kb.set(m[1], Number(m[2]) * 1024);
  }
  const total = kb.get('MemTotal');
  if (total === undefined) throw new Error('no MemTotal in /proc/meminfo');
  // Kernels before 3.14 have no MemAvailable.
  const available =
    kb.get('MemAvailable') ?? (kb.get('MemFree') ?? 0) + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0);
  const swapTotal = kb.get('SwapTotal') ?? 0;
  const swapUsed = Math.max(0, swapTotal - (kb.get('SwapFree') ?? 0));
  const used = Math.max(0, total - available);
  return {
    total,
    available,
    used,
    percent: total > 0 ? round2((used / total) * 100) : null,
    swapTotal,
    swapUsed,
    swapPercent: swapTotal > 0 ? round2((swapUsed / swapTotal) * 100) : null,
  };
}

export interface Mount {
  device: string;
  mount: string;
  fstype: string;
}

/** /proc/self/mounts; octal escapes (`\040` for a space) decoded. */
export function parseMounts(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const [device, mount, fstype] = line.split(' ');
    if (device && mount && fstype) out.push({ device: unescape(device), mount: unescape(mount), fstype });
  }
  return out;
}

// node_exporter's defaults, plus tmpfs and squashfs: kernel and memory filesystems, container layers, snaps.
const PSEUDO_FS =
  /^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|efivarfs|fuse\.lxcfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|ramfs|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tmpfs|tracefs)$/;
const PSEUDO_MOUNT =
  /^\/(dev|proc|sys|run|snap|var\/lib\/docker\/.+|var\/lib\/containers\/storage\/.+|var\/lib\/kubelet\/.+)($|\/)/;

/**
 * Filesystems worth reporting: real ones, once per device (bind mounts of the same device, as
 * Docker makes for /etc/hosts, count once: the shortest mount path wins). The root filesystem is
 * kept even on an overlay (inside a container it is the disk the service writes to).
 */
export function selectFilesystems(mounts: readonly Mount[]): Mount[] {
  const byDevice = new Map<string, Mount>();
  for (const m of mounts) {
    const isRoot = m.mount === '/';
    if (!isRoot && (PSEUDO_FS.test(m.fstype) || PSEUDO_MOUNT.test(m.mount))) continue;
    const key = m.fstype === 'overlay' ? `overlay:${m.mount}` : m.device;
    const seen = byDevice.get(key);
    if (!seen || m.mount.length < seen.mount.length) byDevice.set(key, m);
  }
  return [...byDevice.values()].sort((a, b) => a.mount.localeCompare(b.mount));
}

export interface FsUsage {
  total: number;
  used: number;
  free: number;
  percent: number | null;
}

/** As df: free is what an unprivileged user may still write; percent = used / (used + free). */
export function fsUsage(s: { bsize: number; blocks: number; bfree: number; bavail: number }): FsUsage {
  const total = s.blocks * s.bsize;
  const used = (s.blocks - s.bfree) * s.bsize;
  const free = s.bavail * s.bsize;
  return { total, used, free, percent: used + free > 0 ? round2((used / (used + free)) * 100) : null };
}

export interface DiskCounters {
  device: string;
  readBytes: number;
  writeBytes: number;
}

// Whole disks only: partitions, loop and ram devices would count the same bytes twice or not at all.
const NOT_A_DISK = /^(z?ram|loop|fd|sr|(h|s|v|xv)d[a-z]+\d+|nvme\d+n\d+p\d+|mmcblk\d+p\d+)\d*$/;

/** /proc/diskstats: sectors are always 512 bytes there, whatever the device's sector size. */
export function parseDiskstats(text: string): DiskCounters[] {
  const out: DiskCounters[] = [];
  for (const line of text.split('\n')) {
    const p = line.trim().split(/\s+/);
    if (p.length < 10 || NOT_A_DISK.test(p[2])) continue;
    out.push({ device: p[2], readBytes: Number(p[5]) * 512, writeBytes: Number(p[9]) * 512 });
  }
  return out;
}

export interface NetCounters {
  iface: string;
  bytesReceived: number;
  packetsReceived: number;
  bytesSent: number;
  packetsSent: number;
}

/** Loopback and the host ends of container veth pairs are left out: traffic inside the host, counted twice. */
export const IGNORED_INTERFACES = /^(lo|veth.*)$/;

export function parseNetDev(text: string): NetCounters[] {
  const out: NetCounters[] = [];
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const iface = line.slice(0, i).trim();
    const p = line
      .slice(i + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (!iface || p.length < 10 || IGNORED_INTERFACES.test(iface)) continue;
    out.push({ iface, bytesReceived: p[0], packetsReceived: p[1], bytesSent: p[8], packetsSent: p[9] });
  }
  return out;
}

/** Per-second rate of a counter; null on the first reading, a counter reset (reboot, wrap) or no elapsed time. */
export function ratePerSecond(prev: number | undefined, cur: number, seconds: number): number | null {
  if (prev === undefined || seconds <= 0 || cur < prev) return null;
  return round2((cur - prev) / seconds);
}

export const round2 = (x: number) => Math.round(x * 100) / 100;
