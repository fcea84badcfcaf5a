import { spawn } from 'node:child_process';
import { NVIDIA_SMI_ARGS, parseNvidiaSmi } from './nvidia-smi.js';
import { GpuSample, Sampler, SamplerUnavailable } from './samples.js';

const MAX_OUTPUT_BYTES = 256 * 1024;
/** After "no nvidia-smi" or "no driver", look again this much later rather than at every poll. */
export const GPU_RETRY_MS = 60_000;

/**
 * NVIDIA GPUs through `nvidia-smi` (no maintained NVML binding exists for Node). One short child
 * process per sample, never synchronous: a hung nvidia-smi is killed (SIGKILL) when the collector
 * aborts the poll, and no new one is started while the previous one has not exited.
 */
export class GpuSampler implements Sampler<GpuSample> {
  readonly name = 'gpu';
  private running?: { pid: number | undefined; since: number };

  constructor(
    private readonly command: () => string,
    private readonly now: () => number = Date.now,
  ) {}

  sample(signal: AbortSignal): Promise<GpuSample> {
    if (this.running) {
      const pid = this.running.pid;
      return Promise.reject(
        new Error(`the previous nvidia-smi (pid ${pid}) has not exited after SIGKILL; not starting another`),
      );
    }
    return new Promise<GpuSample>((resolve, reject) => {
      const time = this.now();
      let out = '',
        err = '',
        size = 0,
        settled = false;
      const child = spawn(this.command(), NVIDIA_SMI_ARGS, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
      this.running = { pid: child.pid, since: time };
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        reject(e);
      };
      const onAbort = () => {
        child.kill('SIGKILL');
        fail(new Error(`nvidia-smi did not answer within the poll's deadline; killed (pid ${child.pid})`));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        size += chunk.length;
        if (size > MAX_OUTPUT_BYTES) {
          child.kill('SIGKILL');
          fail(new Error(`nvidia-smi wrote more than ${MAX_OUTPUT_BYTES} bytes; killed`));
        } else out += chunk;
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (err.length < 4096) err += chunk;
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        this.running = undefined;
        signal.removeEventListener('abort', onAbort);
        if (e.code === 'ENOENT')
          fail(
            new SamplerUnavailable(
              `nvidia-smi not found (${this.command()}): no NVIDIA driver on this host`,
              GPU_RETRY_MS,
            ),
          );
        else if (e.code === 'EACCES')
          fail(new SamplerUnavailable(`nvidia-smi cannot be run (${this.command()}): permission denied`, GPU_RETRY_MS));
        else fail(e);
      });
      // 'close': the process has exited and its output is read to the end.
      child.on('close', (code, sig) => {
        this.running = undefined;
        signal.removeEventListener('abort', onAbort);
        if (settled) return;
        const message = firstLine(out) || firstLine(err);
        const reading = parseNvidiaSmi(out);
        if (code !== 0 && reading.gpus.length > 0) {
          // Some GPUs answered and one did not (exit 15: a GPU fell off the bus): report the ones
          // that answered rather than none, and say what nvidia-smi said about the rest.
          settled = true;
          const said = firstLine(reading.problems.join('\n')) || firstLine(err);
          resolve({
            time,
            gpus: reading.gpus,
            problem: `nvidia-smi exited with ${code ?? sig}${said ? `: ${said}` : ''}`,
          });
          return;
        }
        if (code !== 0) {
          // 6: no devices; 9: cannot talk to the driver; other codes are failures worth retrying later too.
          fail(
            new SamplerUnavailable(
              `nvidia-smi exited with ${code ?? sig}${message ? `: ${message}` : ''}`,
              GPU_RETRY_MS,
            ),
          );
          return;
        }
        if (reading.gpus.length === 0) {
          fail(
            out.trim() === ''
              ? new SamplerUnavailable('nvidia-smi listed no GPU', GPU_RETRY_MS)
              : new Error(`unrecognised nvidia-smi output: ${reading.problems[0] ?? message}`),
          );
          return;
        }
        settled = true;
        resolve({ time, gpus: reading.gpus });
      });
    });
  }
}

const firstLine = (s: string) => s.trim().split(/\r?\n/)[0]?.slice(0, 200) ?? '';
