import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../common/errors.js';

/** The routes that take line protocol (as fastify registered them). */
export const LINE_PROTOCOL_ROUTES: ReadonlySet<string> = new Set(['/api/v2/write', '/write']);

/**
 * What line-protocol clients send: the InfluxDB clients and Telegraf `text/plain; charset=utf-8`,
 * `curl --data-binary` (InfluxDB's own 1.x examples) a form type, some HTTP libraries nothing or
 * `application/octet-stream`. '' stands for no Content-Type header. These routes take nothing
 * else (415 from the front door, before the body is read).
 */
export const LINE_PROTOCOL_CONTENT_TYPES = [
  'text/plain',
  'application/octet-stream',
  'application/x-www-form-urlencoded',
  '',
];

/** InfluxDB's error codes (`{"code": "invalid", "message": …}`), which its clients and Telegraf read. */
const INFLUX_CODES: Record<number, string> = {
  400: 'invalid',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not found',
  405: 'method not allowed',
  413: 'request too large',
  415: 'unsupported media type',
  422: 'unprocessable entity',
  429: 'too many requests',
  500: 'internal error',
  503: 'unavailable',
};

const isLineProtocolRoute = (req: FastifyRequest) => LINE_PROTOCOL_ROUTES.has(req.routeOptions?.url ?? '');

/**
 * Body parsers for line protocol (the bytes as a Buffer, which the parser decodes piece by piece;
 * gzip is undone by the preParsing hook and INGEST_MAX_BODY_BYTES applies to the decoded bytes), and InfluxDB's `code` and `message` beside
 * the error envelope on these routes' errors, so that the InfluxDB clients show the message.
 */
export function installLineProtocol(fastify: FastifyInstance): void {
  const parse = (req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
    // The front door already refused these types on other routes; this is the second lock.
    if (!isLineProtocolRoute(req))
      return done(new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'This route takes application/json bodies'));
    // Decoding would turn each invalid byte into U+FFFD, and tag values that differ only there into one series.
    if (typeof body !== 'string' && !isUtf8(body))
      return done(new ApiError(400, 'INVALID_REQUEST', 'Request body is not valid UTF-8 (line protocol is UTF-8)'));
    done(null, body);
  };
  for (const type of LINE_PROTOCOL_CONTENT_TYPES) {
    if (type === '') continue;
    if (fastify.hasContentTypeParser(type)) fastify.removeContentTypeParser(type);
    fastify.addContentTypeParser(type, { parseAs: 'buffer' }, parse);
  }
  // No Content-Type at all (fastify hands such bodies to the catch-all parser).
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, parse);

  fastify.addHook('onSend', (req, reply, payload, done) => {
    const status = reply.statusCode;
    if (status < 400 || typeof payload !== 'string' || !isLineProtocolRoute(req)) return done(null, payload);
    try {
      const body = JSON.parse(payload) as { error?: { message?: string } };
      if (!body?.error || typeof body.error.message !== 'string') return done(null, payload);
      let message = body.error.message;
      const query = req.query as Record<string, unknown> | undefined;
      if (status === 401 && query?.p !== undefined) {
        message +=
          '. Credentials in ?u=&p= are not read (URLs end up in logs): send the key as the password of Basic auth, or as "Authorization: Token <key>"';
        body.error.message = message;
      }
      done(
        null,
        JSON.stringify({
          code: INFLUX_CODES[status] ?? (status >= 500 ? 'internal error' : 'invalid'),
          message,
          ...body,
        }),
      );
    } catch {
      done(null, payload);
    }
  });
}
