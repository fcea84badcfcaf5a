import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply } from 'fastify';
import { serviceUnavailable } from './errors.js';

interface Drain {
  draining: boolean;
  /** Requests that have started (their onRequest hook ran) and whose response has not closed yet. */
  inFlight: Set<FastifyReply>;
}

const drains = new WeakMap<object, Drain>();

/**
 * Installed by createApp (before init): keeps the requests in flight, and once the app drains
 * refuses new ones on connections that are still open (503 SERVICE_UNAVAILABLE + Retry-After,
 * `Connection: close`), and asks clients to close after the answers still to come.
 */
export function installDrain(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  const state: Drain = { draining: false, inFlight: new Set() };
  drains.set(app, state);
  fastify.addHook('onRequest', (_req, reply, done) => {
    if (state.draining) {
      reply.header('connection', 'close');
      done(serviceUnavailable('Timescope is shutting down; retry against another instance or later', 5));
      return;
    }
    state.inFlight.add(reply);
    reply.raw.once('close', () => state.inFlight.delete(reply));
    done();
  });
  fastify.addHook('onResponse', (_req, reply, done) => {
    state.inFlight.delete(reply);
    done();
  });
  fastify.addHook('onSend', (_req, reply, payload, done) => {
    if (state.draining) reply.header('connection', 'close');
    done(null, payload);
  });
}

/**
 * The graceful stop of a listening app: no new connections (and 503 for new requests on open
 * keep-alive connections); requests already accepted run to their normal answer, up to `drainMs`;
 * then app.close(): streams are closed, the point writer commits everything it accepted, the
 * pools close, and whatever is still connected is cut. Streams (SSE, hijacked replies) are not
 * waited for: they never end by themselves, and app.close() ends them.
 */
export async function closeGracefully(
  app: NestFastifyApplication,
  opts: { drainMs: number; log?: (message: string) => void },
): Promise<void> {
  const state = drains.get(app);
  if (state && !state.draining) {
    state.draining = true;
    const server = app.getHttpServer();
    if (server.listening) server.close(); // stops accepting; idle keep-alive connections are closed at once
    const busy = () => {
      let n = 0;
      for (const reply of state.inFlight) if (!reply.sent) n++;
      return n;
    };
    let n = busy();
    if (n > 0) opts.log?.(`waiting for ${n} request(s) in flight`);
    const deadline = Date.now() + opts.drainMs;
    while (n > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      n = busy();
    }
    if (n > 0) opts.log?.(`${n} request(s) still running after ${opts.drainMs / 1000} s: closing anyway`);
  }
  await app.close();
}
