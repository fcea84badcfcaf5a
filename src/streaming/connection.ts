/**
 * One streaming client (a WebSocket or an SSE response) and the rule that keeps a slow one from
 * costing memory or slowing anyone else: nothing is ever awaited; past `bufferBytes` queued for
 * the client, updates are skipped (and the client told how many once it catches up); a client
 * whose queue stays full for `slowClientMs` is disconnected. A sender that can wait because it
 * pulls what it sends (an SSE replay from the ring) paces itself with `pace()` instead.
 */
import { StallClock } from '../common/stall-clock.js';

export interface Sink {
  /** Bytes accepted for this client and not yet handed to the kernel. */
  bufferedAmount(): number;
  /** Queues `data`; `sent` runs once it has left the process (with an error if it never will). */
  send(data: string, sent?: (err?: Error | null) => void): void;
  /** Ends the connection; `code` is a WebSocket close code (SSE just ends the response). */
  close(code: number, reason: string): void;
  /** Holds writes back to send several messages in one system call (optional). */
  cork?(): void;
  uncork?(): void;
}

/** Corked writes are flushed whenever this many bytes are held, so the kernel keeps taking data as it would uncorked. */
const CORK_FLUSH_BYTES = 16 * 1024;

/**
 * Connections corked during one fan-out: the messages of one commit to one client leave in one
 * write, not one system call each. Released at the end of the fan-out (or on the next tick for
 * writes outside one).
 */
export class CorkGroup {
  private corked: StreamConnection[] = [];
  private scheduled = false;

  add(c: StreamConnection): void {
    this.corked.push(c);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.release());
    }
  }

  release(): void {
    this.scheduled = false;
    const list = this.corked;
    this.corked = [];
    for (const c of list) c.uncork();
  }
}

export interface ConnectionLimits {
  bufferBytes: number;
  slowClientMs: number;
}

/** 1013 "Try Again Later": the server cannot serve this client at its pace. */
export const CLOSE_TOO_SLOW = 1013;

export class StreamConnection {
  delivered = 0;
  skippedTotal = 0;
  /** Skipped since the client was last told. */
  private skipped = 0;
  /** Runs while the queue is past `bufferBytes`. */
  private readonly full: StallClock;
  private corkedBytes = -1; // -1: not corked
  /** When a paced sender (a replay) began waiting for its last message to leave; null when not waiting. */
  private pacedSince: number | null = null;
  closed = false;
  readonly openedAt = Date.now();
  /** The API key that opened it (null when keys are off): its streams close when it is revoked or expires. */
  keyId: number | null = null;

  constructor(
    readonly id: number,
    readonly kind: 'ws' | 'sse',
    readonly remote: string,
    private readonly sink: Sink,
    private readonly limits: ConnectionLimits,
    /** Tells the client how many updates it missed: a message in the stream's own format. */
    private readonly skipNotice: (count: number) => string,
    private readonly onCutOff: (c: StreamConnection) => void = () => undefined,
    private readonly corks?: CorkGroup,
  ) {
    this.full = new StallClock(limits.slowClientMs);
  }

  /** Queues one message unless the client is behind; returns whether it was queued. */
  deliver(msg: string, now: number): boolean {
    if (this.closed) return false;
    if (this.sink.bufferedAmount() > this.limits.bufferBytes) {
      this.skipped++;
      this.skippedTotal++;
      if (this.full.blocked(true, now)) this.cutOff();
      return false;
    }
    this.full.blocked(false, now);
    this.write(msg);
    return true;
  }

  /**
   * Queues `msg` for a sender that waits for the client instead of skipping (a replay): true while
   * the client has room for more; false once this message took its queue past `bufferBytes`, and
   * then `resume` runs when that message has left the process (never if the connection ends
   * first). The queue stays within `bufferBytes` and one message, as with deliver(). A client
   * that takes no more of it is cut off by check() after `slowClientMs`, whether its queue is past
   * `bufferBytes` or, with part of the last message taken by the kernel, just under it.
   */
  pace(msg: string, resume: () => void, now = Date.now()): boolean {
    if (this.closed) return false;
    if (this.sink.bufferedAmount() + msg.length <= this.limits.bufferBytes) {
      this.write(msg);
      return true;
    }
    this.pacedSince = now;
    this.write(msg, (err) => {
      this.pacedSince = null;
      if (!err && !this.closed) resume();
    });
    return false;
  }

  private write(msg: string, sent?: (err?: Error | null) => void): void {
    if (this.corks && this.sink.cork) {
      if (this.corkedBytes < 0) {
        this.sink.cork();
        this.corkedBytes = 0;
        this.corks.add(this);
      } else if (this.corkedBytes >= CORK_FLUSH_BYTES) {
        this.sink.uncork!();
        this.sink.cork();
        this.corkedBytes = 0;
      }
      this.corkedBytes += msg.length;
    }
    this.notifySkipped();
    this.sink.send(msg, sent);
    this.delivered++;
  }

  /** Tells the client how many updates it missed since it was last told, if any. */
  private notifySkipped(): void {
    if (this.skipped === 0) return;
    this.sink.send(this.skipNotice(this.skipped));
    this.skipped = 0;
  }

  uncork(): void {
    if (this.corkedBytes < 0) return;
    this.corkedBytes = -1;
    if (!this.closed) this.sink.uncork?.();
  }

  /** Sends regardless of the buffer (acknowledgements, errors: small and rare). */
  reply(msg: string): void {
    if (!this.closed) this.sink.send(msg);
  }

  /**
   * Periodic check: a client that has been full too long goes even when nothing new is sent to it.
   * The clock starts here too: the last message of a burst (or replies and heartbeats) can take the
   * queue past the limit with nothing skipped, and a quiet stream then delivers nothing more. For
   * the same reason a client that has caught up is told here what it missed: on a quiet stream no
   * next update would carry the notice.
   */
  check(now: number): void {
    if (this.closed) return;
    const full = this.sink.bufferedAmount() > this.limits.bufferBytes;
    const stalledReplay = this.pacedSince !== null && now - this.pacedSince >= this.limits.slowClientMs;
    if (this.full.blocked(full, now) || stalledReplay) this.cutOff();
    else if (!full) this.notifySkipped();
  }

  /** Bytes queued for this client and not yet taken by the kernel. */
  queuedBytes(): number {
    return this.closed ? 0 : this.sink.bufferedAmount();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.uncork();
    this.closed = true;
    this.sink.close(code, reason);
  }

  private cutOff(): void {
    this.onCutOff(this);
    this.close(
      CLOSE_TOO_SLOW,
      `too slow: more than ${this.limits.bufferBytes} bytes queued for ${this.limits.slowClientMs / 1000} s`,
    );
  }
}
