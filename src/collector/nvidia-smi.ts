import type { GpuInfo } from './samples.js';

/**
 * Reading `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`. Pure: text in, GPUs out.
 * nvidia-smi writes `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Insufficient Permissions]`
 * or `[GPU is lost]` where a field has no value; those become null, the GPU is still reported.
 */
export const NVIDIA_SMI_FIELDS = [
  'index',
  'uuid',
  'name',
  'utilization.gpu',
  'utilization.memory',
  'memory.used',
  'memory.total',
  'temperature.gpu',
  'power.draw',
  'clocks.sm',
] as const;

export const NVIDIA_SMI_ARGS = [`--query-gpu=${NVIDIA_SMI_FIELDS.join(',')}`, '--format=csv,noheader,nounits'];

const MIB = 1024 * 1024;
const AFTER_NAME = NVIDIA_SMI_FIELDS.length - 3; // fields after `name`

export interface NvidiaSmiReading {
  gpus: GpuInfo[];
  /** Lines that are not a GPU line, and fields that were neither a number nor a known placeholder. */
  problems: string[];
}

/** A number, or null for a placeholder (`[N/A]`, `N/A`, `[Not Supported]`, …) or anything else that is not a number. */
function numeric(text: string, problems: string[], field: string, line: number): number | null {
  const t = text.trim();
  if (t === '' || /^\[.*\]$/.test(t) || /^n\/a$/i.test(t)) return null;
  const n = Number(t);
  if (!Number.isFinite(n)) {
    problems.push(`line ${line}: ${field} is not a number (${JSON.stringify(t.slice(0, 40))})`);
    return null;
  }
  return n;
}

export function parseNvidiaSmi(output: string): NvidiaSmiReading {
  const gpus: GpuInfo[] = [];
  const problems: string[] = [];
  const lines = output.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const parts = line.split(',').map((p) => p.trim());
    if (parts.length < NVIDIA_SMI_FIELDS.length) {
      problems.push(
        `line ${i + 1}: expected ${NVIDIA_SMI_FIELDS.length} fields, got ${parts.length} (${JSON.stringify(line.slice(0, 80))})`,
      );
      return;
    }
    // A product name may itself hold commas: everything between uuid and the numeric tail is the name.
    const name = parts.slice(2, parts.length - AFTER_NAME).join(', ');
    const [index, uuid] = parts;
    const tail = parts.slice(parts.length - AFTER_NAME);
    if (!/^\d+$/.test(index) || uuid === '' || /\s/.test(uuid)) {
      problems.push(`line ${i + 1}: not a GPU line (${JSON.stringify(line.slice(0, 80))})`);
      return;
    }
    const n = (k: number) => numeric(tail[k], problems, NVIDIA_SMI_FIELDS[3 + k], i + 1);
    const mem = (k: number) => {
      const v = n(k);
      return v === null ? null : v * MIB;
    };
    gpus.push({
      index: Number(index),
      uuid,
      name,
      utilization: n(0),
      memoryUtilization: n(1),
      memoryUsed: mem(2),
      memoryTotal: mem(3),
      temperature: n(4),
      powerDraw: n(5),
      smClock: n(6),
    });
  });
  return { gpus: gpus.sort((a, b) => a.index - b.index), problems };
}
