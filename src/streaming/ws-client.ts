import { Logger } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import { upgradePrincipalOf } from '../auth/front-door.js';
import { StreamConnection } from './connection.js';
import { CommittedPoint, PointEncoder, StreamHub, StreamTarget } from './stream-hub.js';

const OPEN = 1;
/** Client messages per window before the socket is closed with 1008 (policy violation). */
const MESSAGE_RATE = { max: 100, windowMs: 10_000 };

/**
 * A WebSocket client of the stream hub: admitted under its limits (STREAM_MAX_CONNECTIONS, per
 * key), so the slow-client rule, key revocation and shutdown apply to it as to every stream;
 * pinged by the hub's heartbeat; released when its socket closes. Subclasses say what it sends
 * and what it makes of the client's messages.
 */
export abstract class WsClient implements StreamTarget {
  protected static readonly logger = new Logger('ws');
  readonly connection: StreamConnection;
  private awaitingPong = false;
  private windowStart = Date.now();
  private messagesInWindow = 0;

  /** Throws (503) when the hub is at its connection cap. */
  constructor(
    protected readonly socket: WebSocket,
    req: IncomingMessage,
    protected readonly hub: StreamHub,
  ) {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const tcp = (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    this.connection = hub.admit(
      'ws',
      remote,
      {
        bufferedAmount: () => socket.bufferedAmount,
        send: (data, sent) => socket.send(data, sent),
        close: (code, reason) => (socket.readyState === OPEN ? socket.close(code, reason) : socket.terminate()),
        // ws writes each frame with its own system call; corking the TCP socket batches a commit's frames.
        cork: tcp ? () => tcp.cork() : undefined,
        uncork: tcp ? () => tcp.uncork() : undefined,
      },
      (count) => JSON.stringify({ type: 'updates_skipped', count, reason: 'the client did not keep up' }),
      upgradePrincipalOf(req).keyId,
    );
    hub.addTarget(this);
    // The adapter logs socket errors at error level: client misbehaviour (oversized frames) must not flood the log.
    socket.removeAllListeners('error');
    socket.on('error', (err) => WsClient.logger.debug(`${remote}: ${err.message}`));
    socket.on('message', (data, isBinary) => this.received(data, isBinary));
    socket.on('pong', () => (this.awaitingPong = false));
    socket.once('close', () => this.dispose());
  }

  abstract accept(p: CommittedPoint, enc: PointEncoder, now: number): void;

  /** A message from the client, within the rate (more than MESSAGE_RATE closes the socket with 1008). */
  protected abstract onMessage(data: RawData, isBinary: boolean, now: number): void;

  private received(data: RawData, isBinary: boolean): void {
    const now = Date.now();
    if (now - this.windowStart > MESSAGE_RATE.windowMs) {
      this.windowStart = now;
      this.messagesInWindow = 0;
    }
    if (++this.messagesInWindow > MESSAGE_RATE.max) {
      this.connection.close(1008, `more than ${MESSAGE_RATE.max} messages in ${MESSAGE_RATE.windowMs / 1000} s`);
      return;
    }
    this.onMessage(data, isBinary, now);
  }

  /** Pings; a client that did not answer the previous ping is gone. */
  heartbeat(): void {
    if (this.socket.readyState !== OPEN) return;
    if (this.awaitingPong) {
      this.socket.terminate();
      return;
    }
    this.awaitingPong = true;
    this.socket.ping();
  }

  /** Called once the socket has closed: what the subclass holds beyond the connection. */
  protected onClose(): void {}

  /**
   * `open()` (a client's constructor, which the hub may refuse), or undefined with the socket closed
   * 1013 "Try Again Later" when it refused (over STREAM_MAX_CONNECTIONS, the key's cap, shutting down).
   */
  static openOrRefuse<T extends WsClient>(socket: WebSocket, open: () => T): T | undefined {
    try {
      return open();
    } catch (err) {
      WsClient.logger.debug(`refused a WebSocket client: ${(err as Error).message}`);
      socket.close(1013, (err as Error).message.slice(0, 120));
      return undefined;
    }
  }

  private dispose(): void {
    this.onClose();
    this.connection.closed = true;
    this.hub.removeTarget(this);
    this.hub.release(this.connection);
  }
}
