/**
 * One streaming client (a WebSocket or an SSE response) and the rule that keeps a slow one from
 * costing memory or slowing anyone else: nothing is ever awaited; past `bufferBytes` queued for
 * the client, updates are skipped (and the client told how many once it catches up); a client
 * whose queue stays full for `slowClientMs` is disconnected.
 */
export interface Sink {
  /** Bytes accepted for this client and not yet handed to the kernel. */
  bufferedAmount(): number;
  send(data: string): void;
  /** Ends the connection; `code` is a WebSocket close code (SSE just ends the response). */
  close(code: number, reason: string): void;
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
  private fullSince: number | undefined;
  closed = false;
  readonly openedAt = Date.now();

  constructor(
    readonly id: number,
    readonly kind: 'ws' | 'sse',
    readonly remote: string,
    private readonly sink: Sink,
    private readonly limits: ConnectionLimits,
    /** Tells the client how many updates it missed: a message in the stream's own format. */
    private readonly skipNotice: (count: number) => string,
    private readonly onCutOff: (c: StreamConnection) => void = () => undefined,
  ) {}

  /** Queues one message unless the client is behind; returns whether it was queued. */
  deliver(msg: string, now: number): boolean {
    if (this.closed) return false;
    if (this.sink.bufferedAmount() > this.limits.bufferBytes) {
      this.skipped++;
      this.skippedTotal++;
      if (this.fullSince === undefined) this.fullSince = now;
      else if (now - this.fullSince >= this.limits.slowClientMs) this.cutOff();
      return false;
    }
    this.fullSince = undefined;
    if (this.skipped > 0) {
      this.sink.send(this.skipNotice(this.skipped));
      this.skipped = 0;
    }
    this.sink.send(msg);
    this.delivered++;
    return true;
  }

  /** Sends regardless of the buffer (acknowledgements, errors: small and rare). */
  reply(msg: string): void {
    if (!this.closed) this.sink.send(msg);
  }

  /** Periodic check: a client that has been full too long goes even when nothing new is sent to it. */
  check(now: number): void {
    if (this.closed) return;
    if (this.sink.bufferedAmount() <= this.limits.bufferBytes) this.fullSince = undefined;
    else if (this.fullSince !== undefined && now - this.fullSince >= this.limits.slowClientMs) this.cutOff();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.close(code, reason);
  }

  private cutOff(): void {
    this.onCutOff(this);
    this.close(CLOSE_TOO_SLOW, `too slow: more than ${this.limits.bufferBytes} bytes queued for ${this.limits.slowClientMs / 1000} s`);
  }
}
