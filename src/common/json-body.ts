import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

/** From this size on, a JSON body waits its turn to be parsed (see installJsonParser). */
export const LARGE_JSON_BYTES = 256 * 1024;

/**
 * A route's own reader of its JSON body's bytes (the ingest scanner, src/ingestion/json-scan.ts):
 * what the handler gets as its body, or undefined to have the body parsed as any other.
 */
export type JsonFastPath = (body: Buffer, query: Readonly<Record<string, unknown>>) => unknown;

/**
 * A route's look at its JSON body's bytes before JSON.parse: an error to answer at once, for a
 * body the handler would refuse anyway and that would be dear to parse, or undefined.
 */
export type JsonGuard = (body: Buffer) => Error | undefined;

/** From this size on, a route's guard looks at a body before it is parsed (see installJsonParser). */
export const GUARDED_JSON_BYTES = 64 * 1024;

/**
 * A body its route's guard refused, handed on as the parsed body: a preHandler hook answers with
 * the error before the handler runs. Passed to the parser's `done` as an error instead, fastify
 * would close the connection after the 400 (it does for bodies it could not read), though the
 * body was read in full.
 */
class RefusedBody {
  constructor(readonly error: Error) {}
}

const notUtf8 = () => new ApiError(400, 'INVALID_REQUEST', 'Request body is not valid UTF-8 (JSON is UTF-8, RFC 8259)');

/** secure-json-parse's message when it refuses a `__proto__` or `constructor.prototype` key. */
export const FORBIDDEN_KEY_MESSAGE = 'Object contains forbidden prototype property';

/**
 * The 400 for a body holding a `__proto__` key, or a `constructor` object with a `prototype` key
 * (prototype poisoning: `onProtoPoisoning`/`onConstructorPoisoning: 'error'`), naming where when
 * known. fastify's parser reports it as "Body is not valid JSON", which the body is.
 */
export function forbiddenKeyError(field?: string, key = '__proto__'): ApiError {
  return new ApiError(
    400,
    'INVALID_REQUEST',
    `Request body holds a ${key} key${field === undefined ? '' : ` (${field})`}: Timescope refuses __proto__ and constructor.prototype keys anywhere in a JSON body`,
    field === undefined ? undefined : { field },
  );
}

/**
 * Where a JSON text that secure-json-parse refused holds its forbidden key, as the error to answer
 * (the shallowest, as secure-json-parse looks breadth-first), or undefined when the text is not
 * valid JSON after all (then it is answered as malformed). Breadth-first with
 * a queue, not recursion: a body nested 100,000 deep would overflow the stack.
 */
export function forbiddenKeyOf(text: string): ApiError | undefined {
  // secure-json-parse only looks when these can occur: a malformed body is not parsed twice.
  if (!/proto|constructor|\\u/.test(text)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text); // secure-json-parse skips a BOM
  } catch {
    return undefined;
  }
  const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const queue: Array<[unknown, string]> = [[value, '']];
  for (let q = 0; q < queue.length; q++) {
    const [v, path] = queue[q];
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) queue.push([v[i], `${path}[${i}]`]);
      continue;
    }
    const at = (k: string) => (path === '' ? k : `${path}.${k}`);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (k === '__proto__') return forbiddenKeyError(at(k));
      const c = o[k];
      if (k === 'constructor' && c !== null && typeof c === 'object' && own(c, 'prototype'))
        return forbiddenKeyError(at('constructor.prototype'), 'constructor.prototype');
      queue.push([c, at(k)]);
    }
  }
  return forbiddenKeyError(); // valid JSON that secure-json-parse refused: such a key, somewhere
}

export interface JsonParserOptions {
  largeBytes?: number;
  /** By route path as registered (`/api/v1/metrics`). */
  fastPaths?: Readonly<Record<string, JsonFastPath>>;
  /** By route path as registered; run on bodies of GUARDED_JSON_BYTES or more that no fast path took. */
  guards?: Readonly<Record<string, JsonGuard>>;
}

/**
 * JSON request bodies, parsed as fastify does (secure-json-parse: `__proto__` and `constructor`
 * keys refused, with a 400 that says so: forbiddenKeyOf), but the large ones one at a time, each
 * in a macrotask of its own: between two of them the event loop takes in whatever arrived
 * meanwhile, such as a health check. JSON.parse cannot be interrupted, and a 1.3 MB object of
 * 100,000 keys takes 170-280 ms of it; four clients sending such bodies at once made /health wait
 * behind all four. Now it waits behind one at most. Parsing stays on this thread: handing the
 * result back from a worker costs more than parsing.
 *
 * A route with a fast path (`options.fastPaths`) gets the bytes first; when its reader declines,
 * the body is parsed here as on every other route, so errors stay the same. Before that, a route's
 * guard (`options.guards`) may refuse a body of GUARDED_JSON_BYTES or more that its handler would
 * refuse anyway, such as a point of 100,000 tags (src/common/tag-guard.ts): the answer then
 * names that problem, where the handler would have named the first of its own (and on ingest listed
 * up to 20). Smaller bodies cost little to parse and are not looked at.
 */
export function installJsonParser(fastify: FastifyInstance, options: JsonParserOptions = {}): void {
  const largeBytes = options.largeBytes ?? LARGE_JSON_BYTES;
  const fastPaths = new Map(Object.entries(options.fastPaths ?? {}));
  const guards = new Map(Object.entries(options.guards ?? {}));
  const parse = fastify.getDefaultJsonParser('error', 'error');
  const queue: Array<() => void> = [];
  let running = false;
  const next = (): void => {
    const job = queue.shift();
    if (!job) {
      running = false;
      return;
    }
    setImmediate(() => {
      try {
        job(); // answers through done(), errors included
      } finally {
        next();
      }
    });
  };
  fastify.addHook('preHandler', (req, _reply, hookDone) =>
    req.body instanceof RefusedBody ? hookDone(req.body.error) : hookDone(),
  );
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, raw, done) => {
    const body = raw as Buffer; // parseAs: 'buffer'
    const route = req.routeOptions.url ?? '';
    const fast = fastPaths.size > 0 ? fastPaths.get(route) : undefined;
    const guard = body.length >= GUARDED_JSON_BYTES ? guards.get(route) : undefined;
    const job = () => {
      try {
        parseBody();
      } catch (err) {
        done(err as Error, undefined); // never out of a setImmediate: that would end the process
      }
    };
    const parseBody = () => {
      if (fast) {
        let result: unknown;
        try {
          result = fast(body, (req.query ?? {}) as Record<string, unknown>);
        } catch {
          result = undefined; // the slow path answers, as it would have without the fast one
        }
        if (result !== undefined) return done(null, result);
      }
      if (guard) {
        let refused: Error | undefined;
        try {
          refused = guard(body);
        } catch {
          refused = undefined; // parsed and answered as without the guard
        }
        if (refused) return done(null, new RefusedBody(refused));
      }
      // Decoding would turn each invalid byte into U+FFFD, and tag values that differ only there into
      // one series (the scanner declines such bodies). JSON is UTF-8 (RFC 8259), whatever the charset says.
      if (!isUtf8(body)) return done(null, new RefusedBody(notUtf8()));
      // As fastify's parseAs 'string': the whole body decoded at once.
      const text = body.toString('utf8');
      parse(req, text, (err, parsed) => {
        // secure-json-parse refuses a __proto__ or constructor.prototype key in valid JSON, which
        // fastify reports as invalid JSON: say what it is instead (the body was read in full).
        const forbidden =
          err && (err as { code?: string }).code === 'FST_ERR_CTP_INVALID_JSON_BODY' && forbiddenKeyOf(text);
        if (forbidden) return done(null, new RefusedBody(forbidden));
        done(err, parsed);
      });
    };
    if (body.length < largeBytes) return job();
    queue.push(job);
    if (!running) {
      running = true;
      next();
    }
  });
}
