import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { readFile } from 'node:fs/promises';

/**
 * The rule that cuts slow clients off on a clock, shared by live streams and downloads: a client
 * is stalled once it has been blocked (its queue full, or nothing taken from it) without a break
 * for `limitMs`. Any moment it is not blocked starts the clock afresh.
 */
export class StallClock {
  private since: number | undefined;

  constructor(readonly limitMs: number) {}

  /** Feeds what is seen at `now`; true once the client has been blocked for the whole limit. */
  blocked(isBlocked: boolean, now: number): boolean {
    if (!isBlocked) {
      this.since = undefined;
      return false;
    }
    if (this.since === undefined) this.since = now;
    return now - this.since >= this.limitMs;
  }

  /** How long the client has been blocked (0 when it is not). */
  blockedFor(now: number): number {
    return this.since === undefined ? 0 : now - this.since;
  }
}

/**
 * Bytes that have left the process on `socket`: Node counts bytes handed to libuv
 * (`_bytesDispatched`), less what libuv still queues (`writeQueueSize`); where those are missing,
 * whole completed writes only (public, coarser).
 */
export function bytesTaken(socket: Socket): number {
  const s = socket as Socket & { _bytesDispatched?: number; _handle?: { writeQueueSize?: number } | null };
  const queued = s._handle?.writeQueueSize;
  if (typeof s._bytesDispatched === 'number' && typeof queued === 'number') return s._bytesDispatched - queued;
  return socket.bytesWritten - socket.writableLength;
}

/**
 * Bytes the kernel holds for `socket` that the peer has not acknowledged yet (`tx_queue` of
 * /proc/net/tcp, Linux); undefined elsewhere, or when the ports do not single out one connection.
 * The kernel lets a process write again only once a third of its send buffer (up to 4 MB) is free,
 * so without this a client reading 100 KB/s would look idle for many seconds at a time.
 */
export async function kernelUnacked(socket: Socket): Promise<number | undefined> {
  if (process.platform !== 'linux' || !socket.localPort || !socket.remotePort) return undefined;
  const port = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  const local = port(socket.localPort),
    remote = port(socket.remotePort);
  const found: number[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'latin1').catch(() => '');
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/); // sl local_address rem_address st tx_queue:rx_queue ...
      if (f.length > 4 && f[1].endsWith(local) && f[2].endsWith(remote)) found.push(parseInt(f[4].split(':')[0], 16));
    }
  }
  return found.length === 1 ? found[0] : undefined;
}

/**
 * Watches a response being streamed: when bytes wait to be sent and the client takes none of them
 * for `limitMs` (it stopped reading: its TCP window is shut), the connection is destroyed and
 * `onStall` runs once. A response waiting on its own producer (nothing queued) is never stalled,
 * nor is a client that reads slowly but keeps reading. The watch ends with the response.
 * Checked `limitMs / 4` apart (at most every second): the cut-off comes at most two checks past the limit.
 */
export function cutOffWhenStalled(res: ServerResponse, limitMs: number, onStall: (bytesSent: number) => void): void {
  if (res.writableFinished || res.destroyed) return;
  const clock = new StallClock(limitMs);
  let lastSent = -1;
  let lastUnacked: number | undefined;
  let checking = false;
  let done = false;
  const check = async () => {
    const socket = res.socket;
    if (!socket || socket.destroyed) return stop();
    const sent = bytesTaken(socket);
    // Only when nothing more left the process: has the client taken any of what the kernel holds?
    const unacked = sent === lastSent ? await kernelUnacked(socket) : undefined;
    const progressed = sent !== lastSent || (unacked !== undefined && unacked !== lastUnacked);
    lastSent = sent;
    lastUnacked = unacked;
    if (!clock.blocked(res.writableLength > 0 && !progressed, performance.now()) || done) return;
    stop();
    res.destroy();
    onStall(sent - (unacked ?? 0));
  };
  const timer = setInterval(
    () => {
      if (checking) return;
      checking = true;
      void check().finally(() => (checking = false));
    },
    Math.max(50, Math.min(1_000, Math.floor(limitMs / 4))),
  );
  timer.unref();
  const stop = () => {
    done = true;
    clearInterval(timer);
  };
  // 'finish': everything was handed to the kernel, the client may read it at leisure.
  res.once('finish', stop);
  res.once('close', stop);
}
