import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { toApiError } from '../common/error-envelope.js';
import { invalidRequest, notFound } from '../common/errors.js';
import { type FrontDoor, RateLimitError } from './front-door.js';

type VerifyDone = (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void;
type Upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
type PathServer = WebSocketServer & { path: string };

/**
 * The WebSocket adapter with the front door on the upgrade: a client without a valid key (header
 * or `?access_token=`), over its rate limit, or from another site when AUTH is off, gets the HTTP
 * error (401, 403, 429) instead of a socket, in the JSON error envelope. So does an upgrade to a
 * path with no WebSocket endpoint (404 once a key is valid, as on HTTP; Nest's own listener
 * dropped the connection) and one whose request target is not a URL (400).
 */
export class FrontDoorWsAdapter extends WsAdapter {
  /** The upgrade listener on each port's HTTP server, taken off again by `dispose`. */
  private readonly upgradeListeners = new Map<number, Upgrade>();

  constructor(
    app: INestApplicationContext,
    private readonly door: FrontDoor,
  ) {
    super(app);
  }

  override create(port: number, options: Record<string, unknown> = {}) {
    const verifyClient = (info: { req: IncomingMessage }, done: VerifyDone) => {
      this.door.admitUpgrade(info.req).then(
        () => done(true),
        (err) => {
          const r = refusal(err);
          done(false, r.status, r.body, r.headers);
        },
      );
    };
    return super.create(port, { ...options, verifyClient });
  }

  /**
   * Registers the HTTP server of `port` with our own upgrade listener instead of Nest's (which
   * dropped the connection of an upgrade to an unknown path, and built the URL from the Host
   * header, writing a broken answer when that was malformed): ours routes by path alone and
   * answers what it cannot route.
   */
  protected override ensureHttpServerExists(port: number, httpServer = createServer()): Server | undefined {
    if (this.httpServersRegistry.has(port)) return undefined;
    this.httpServersRegistry.set(port, httpServer);
    const routeUpgrade: Upgrade = (req, socket, head) => {
      const path = pathOf(req);
      const servers = (this.wsServersRegistry.get(port) ?? []) as PathServer[];
      const target = servers.find((s) => s.path === path);
      if (target) return target.handleUpgrade(req, socket, head, (ws: WebSocket) => target.emit('connection', ws, req));
      // Node's server has let go of the socket: without a listener, a reset while the key is
      // checked would be an uncaught error.
      socket.on('error', () => socket.destroy());
      if (path === undefined)
        return refuseUpgrade(socket, invalidRequest('The request target is not a URL', { field: 'url' }));
      const paths = servers.map((s) => s.path).join(', ');
      this.door.admitUpgrade(req, false).then(
        () => refuseUpgrade(socket, notFound(`No WebSocket endpoint at ${path}; WebSocket streams are at ${paths}`)),
        (err) => refuseUpgrade(socket, err),
      );
    };
    httpServer.on('upgrade', routeUpgrade);
    this.upgradeListeners.set(port, routeUpgrade);
    return httpServer;
  }

  /** Nest's, after taking our listeners off the servers (the application's outlives the adapter). */
  override async dispose(): Promise<void> {
    for (const [port, listener] of this.upgradeListeners) this.httpServersRegistry.get(port)?.off('upgrade', listener);
    this.upgradeListeners.clear();
    await super.dispose();
  }
}

/** The path of a request target, undefined when it is not a URL (the Host header plays no part). */
function pathOf(req: IncomingMessage): string | undefined {
  try {
    return new URL(req.url ?? '/', 'http://upgrade').pathname;
  } catch {
    return undefined;
  }
}

/** The HTTP answer to an upgrade refused with `err`: its status, headers and the JSON error envelope. */
function refusal(err: unknown): { status: number; headers: Record<string, string>; body: string } {
  const e = toApiError(err);
  const headers: Record<string, string> = e instanceof RateLimitError ? e.headers() : {};
  if (e.retryAfter !== undefined) headers['Retry-After'] = String(e.retryAfter);
  if (e.getStatus() === 401) headers['WWW-Authenticate'] = 'Bearer realm="timescope"';
  // The body is the JSON error envelope, as on every HTTP answer: ws writes `message` as the
  // body with Content-Type text/html unless the headers say otherwise (the same key's case).
  headers['Content-Type'] = 'application/json; charset=utf-8';
  return { status: e.getStatus(), headers, body: JSON.stringify({ error: e.body() }) };
}

/** Answers an upgrade that reaches no endpoint with `err` (refusal) and closes the connection. */
function refuseUpgrade(socket: Duplex, err: unknown): void {
  if (!socket.writable) return void socket.destroy();
  const { status, headers, body } = refusal(err);
  const lines = Object.entries({ ...headers, Connection: 'close', 'Content-Length': String(Buffer.byteLength(body)) });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${lines.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`,
  );
}
