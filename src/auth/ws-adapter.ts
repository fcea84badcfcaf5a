import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { IncomingMessage } from 'node:http';
import { toApiError } from '../common/error-envelope.js';
import { type FrontDoor, RateLimitError } from './front-door.js';

type VerifyDone = (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void;

/**
 * The WebSocket adapter with the front door on the upgrade: a client without a valid key (header
 * or `?access_token=`), over its rate limit, or from another site when AUTH is off, gets the HTTP
 * error (401, 403, 429) instead of a socket, in the JSON error envelope.
 */
export class FrontDoorWsAdapter extends WsAdapter {
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
          const e = toApiError(err);
          const headers: Record<string, string> = e instanceof RateLimitError ? e.headers() : {};
          if (e.retryAfter !== undefined) headers['Retry-After'] = String(e.retryAfter);
          if (e.getStatus() === 401) headers['WWW-Authenticate'] = 'Bearer realm="timescope"';
          // The body is the JSON error envelope, as on every HTTP answer: ws writes `message` as the
          // body with Content-Type text/html unless the headers say otherwise (the same key's case).
          headers['Content-Type'] = 'application/json; charset=utf-8';
          done(false, e.getStatus(), JSON.stringify({ error: e.body() }), headers);
        },
      );
    };
    return super.create(port, { ...options, verifyClient });
  }
}
