/** What the samplers produce and the live cache holds. Byte counts are bytes, rates per second, temperatures °C. */

export interface FilesystemSample {
  mount: string;
  device: string;
  fstype: string;
  total: number;
  used: number;
  free: number;
  percent: number | null;
}

export interface DiskIoSample {
  device: string;
  readBytesTotal: number;
  writeBytesTotal: number;
  readBytesPerSec: number | null;
  writeBytesPerSec: number | null;
}

export interface NetworkSample {
  iface: string;
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  bytesSentPerSec: number | null;
  bytesReceivedPerSec: number | null;
  packetsSentPerSec: number | null;
  packetsReceivedPerSec: number | null;
}

export interface TemperatureSample {
  sensor: string;
  celsius: number;
}

export interface HostSample {
  time: number;
  cpu: { usage: number | null; cores: Array<number | null>; count: number; loadAverage: [number, number, number] };
  memory: { total: number; used: number; available: number; percent: number | null };
  swap: { total: number; used: number; percent: number | null };
  filesystems: FilesystemSample[];
  disks: DiskIoSample[];
  network: NetworkSample[];
  temperatures: TemperatureSample[];
}

export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
  /** Percent of time a kernel ran. */
  utilization: number | null;
  /** Percent of time memory was read or written. */
  memoryUtilization: number | null;
  memoryUsed: number | null;
  memoryTotal: number | null;
  temperature: number | null;
  /** Watts. */
  powerDraw: number | null;
  /** MHz. */
  smClock: number | null;
}

export interface GpuSample {
  time: number;
  gpus: GpuInfo[];
  /** Set when only some GPUs could be read (nvidia-smi failed for the others): what it said. */
  problem?: string;
}

/** A sampler could not sample and says why (no GPU, no nvidia-smi, a driver error): not a fault of the collector. */
export class SamplerUnavailable extends Error {
  constructor(
    message: string,
    /** Try again only after this long (a missing binary does not appear every 5 seconds). */
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

export interface Sampler<T> {
  readonly name: string;
  /** One reading. Must stop (and settle) soon after `signal` aborts; throws SamplerUnavailable when there is nothing to read. */
  sample(signal: AbortSignal): Promise<T>;
}
