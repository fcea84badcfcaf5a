import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { sendError } from '../common/error-envelope.js';
import { ApiError, ErrorBody } from '../common/errors.js';
import { AppConfig, isLoopbackHost, RateClass } from '../config/config.js';
import { DEFAULT_RATE_CLASS, RouteAccess } from './access.js';
import { ApiKeysService, Principal } from './api-keys.service.js';
import { bearerToken, grants } from './keys.js';
import { RateLimiter } from './rate-limiter.js';
import { redactWebhookUrls } from '../webhooks/redact.js';

/** The principal of requests when AUTH is off. */
export const ANONYMOUS: Principal = Object.freeze({
  keyId: null,
  name: 'anonymous',
  scopes: Object.freeze(['admin']) as readonly ['admin'],
  rateLimits: {},
});

/** What the front door needs to know of a request (an HTTP request or a WebSocket upgrade). */
export interface Knock {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  ip: string;
  /** `?access_token=`, for routes that accept it. */
  queryToken?: string;
}

/** 429 in the reference's shape: `retry_after`, `limit` and `window` beside the code. */
export class RateLimitError extends ApiError {
  constructor(
    retryAfter: number,
    readonly limit: number,
    readonly rateClass: RateClass,
  ) {
    super(
      429,
      'RATE_LIMIT_EXCEEDED',
      `Too many requests: ${limit} per minute for ${rateClass.replace('_', ' ')} requests; retry in ${retryAfter} s`,
      { class: rateClass },
      retryAfter,
    );
  }

  override body(): ErrorBody {
    return { ...super.body(), limit: this.limit, window: '1m' } as ErrorBody;
  }

  /** The X-RateLimit headers of every limited answer, the 429 too: nothing remains. */
  headers(): Record<string, string> {
    return { 'X-RateLimit-Limit': String(this.limit), 'X-RateLimit-Remaining': '0' };
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const DOCS = /^\/swagger-ui(\/|-yaml$|$)/;
const HEALTH: RouteAccess = { access: 'public' };
const UNDECLARED: RouteAccess = { access: 'admin' };
const STREAM: RouteAccess = { access: 'read', rate: 'stream', tokenInQuery: true };

function unauthorized(message: string): ApiError {
  return new ApiError(401, 'UNAUTHORIZED', message);
}

/**
 * The front door: every HTTP request and WebSocket upgrade passes here before its body is read.
 * In order: requests from browsers on other sites are refused when AUTH is off (no CSRF, no DNS
 * rebinding); a body must be of the route's content type (JSON unless the route says otherwise);
 * the bearer key is checked (401) and its scope (403); then the key's (or address's) rate limit
 * (429). Health checks pass untouched.
 */
@Injectable()
export class FrontDoor implements OnApplicationBootstrap {
  private readonly logger = new Logger('front-door');
  private readonly limiter: RateLimiter;

  constructor(
    private readonly keys: ApiKeysService,
    private readonly config: AppConfig,
  ) {
    this.limiter = new RateLimiter(config.rateLimits.maxClients);
  }

  /** Refusals since start, for the self-metrics: 429s by rate class, and failed authentications by reason. */
  readonly refusals = {
    rateLimited: {} as Partial<Record<RateClass, number>>,
    auth: { missing_key: 0, malformed_header: 0, invalid_key: 0, missing_scope: 0 },
  };

  /** Every route with its declared access, as registered (for the route table test and the README). */
  readonly routes: Array<{ method: string; url: string; access: RouteAccess }> = [];

  /** fastify `onRoute` hook: a route without `@Access(...)` stops the start (closed by default, and said loudly). */
  registerRoute(r: { method: string | string[]; url: string; config?: unknown }): void {
    if (DOCS.test(r.url)) return;
    const config = r.config as Partial<RouteAccess> | undefined;
    if (!config?.access)
      throw new Error(`route ${String(r.method)} ${r.url} declares no access: add @Access(...) to its handler`);
    for (const method of [r.method].flat()) this.routes.push({ method, url: r.url, access: config as RouteAccess });
  }

  /** Says at start whether keys are required, and how to get the first one. */
  async onApplicationBootstrap(): Promise<void> {
    const { mode, enabled } = this.config.auth;
    if (!enabled) {
      const local = isLoopbackHost(this.config.host);
      const why = mode === 'off' ? 'AUTH=off' : 'AUTH=auto on the embedded default';
      const msg = `API keys are not required (${why}): ${local ? `open to this machine only (${this.config.host})` : `OPEN TO ANYONE WHO CAN REACH ${this.config.host}`}. Set AUTH=on and create a key with \`make key\` to require keys`;
      if (local) this.logger.log(msg);
      else this.logger.warn(msg);
      return;
    }
    const live = await this.keys.liveAdminKeys().catch(() => undefined);
    if (live === 0)
      this.logger.warn('API keys are required (AUTH) and there is no admin key yet: create the first with `make key`');
    else this.logger.log('API keys are required on every route but /health (Authorization: Bearer <key>)');
  }

  /** fastify `onRequest` hook. */
  async onRequest(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const route = routeOf(req);
    if (route === HEALTH) return;
    try {
      const principal = await this.admit(
        {
          method: req.method,
          path: req.url.split('?', 1)[0],
          headers: req.headers,
          ip: req.ip,
          queryToken: route?.tokenInQuery
            ? queryToken((req.query as Record<string, unknown>)?.access_token)
            : undefined,
        },
        route,
        reply,
      );
      (req as FastifyRequest & { principal?: Principal }).principal = principal;
    } catch (err) {
      if (err instanceof ApiError && err.getStatus() === 401)
        reply.header('WWW-Authenticate', 'Bearer realm="timescope"');
      if (err instanceof RateLimitError) reply.headers(err.headers());
      sendError(reply, err, this.logger);
      return reply as unknown as void;
    }
  }

  /**
   * fastify `preSerialization` hook: the answer of a route that holds webhook URLs (`webhookUrls`),
   * with those URLs redacted for a key without the admin scope.
   */
  answer(req: FastifyRequest, payload: unknown): unknown {
    if (!routeOf(req)?.webhookUrls || grants(principalOf(req).scopes, 'admin')) return payload;
    return redactWebhookUrls(payload);
  }

  /**
   * Decides on one request; throws the ApiError to answer with. `route` is the route's declared
   * access (undefined for an unknown path, which still needs a key: 401 before 404).
   */
  async admit(
    k: Knock,
    route: RouteAccess | undefined,
    reply?: { header(name: string, value: string): unknown },
  ): Promise<Principal> {
    try {
      return await this.decide(k, route, reply);
    } catch (err) {
      if (err instanceof RateLimitError)
        this.refusals.rateLimited[err.rateClass] = (this.refusals.rateLimited[err.rateClass] ?? 0) + 1;
      throw err;
    }
  }

  private async decide(
    k: Knock,
    route: RouteAccess | undefined,
    reply?: { header(name: string, value: string): unknown },
  ): Promise<Principal> {
    const docs = route === undefined && DOCS.test(k.path); // Swagger UI and the OpenAPI document: open, to read and to paste a key into
    const access = docs ? 'public' : route?.access;
    const rateClass = route?.rate ?? (docs ? 'docs' : access ? DEFAULT_RATE_CLASS[access] : 'query');
    const authOn = this.config.auth.enabled;
    if (!authOn) this.refuseCrossSite(k);
    if (MUTATING.has(k.method)) this.checkBody(k, route);

    let principal: Principal = ANONYMOUS;
    if (authOn && access !== 'public') {
      principal = await this.authenticate(k);
      const needed = access === undefined || access === 'any' ? undefined : access;
      if (needed && !grants(principal.scopes, needed)) {
        this.refusals.auth.missing_scope++;
        throw new ApiError(
          403,
          'FORBIDDEN',
          `This API key (${principal.name}) lacks the ${needed} scope that ${k.method} ${k.path} needs`,
          {
            required_scope: needed,
            key_scopes: principal.scopes,
          },
        );
      }
    }
    if (rateClass && this.config.rateLimits.enabled) {
      const limit = principal.rateLimits[rateClass] ?? this.config.rateLimits.perMinute[rateClass];
      const verdict = this.limiter.take(`${rateClass}:${principal.keyId ?? `ip:${k.ip}`}`, limit);
      if (!verdict.allowed) throw new RateLimitError(verdict.retryAfter, limit, rateClass);
      if (limit > 0 && reply) {
        reply.header('X-RateLimit-Limit', String(limit));
        reply.header('X-RateLimit-Remaining', String(verdict.remaining));
      }
    }
    return principal;
  }

  /**
   * A WebSocket upgrade (/ws/metrics): a stream to read, key in the header or `?access_token=`.
   * `endpoint` false: no WebSocket is served at that path, which still needs a key (401 before 404).
   */
  async admitUpgrade(req: IncomingMessage, endpoint = true): Promise<Principal> {
    const url = new URL(req.url ?? '/', 'http://upgrade');
    const principal = await this.admit(
      {
        method: 'GET',
        path: url.pathname,
        headers: req.headers,
        ip: req.socket.remoteAddress ?? '',
        queryToken: url.searchParams.get('access_token') ?? undefined,
      },
      endpoint ? STREAM : undefined,
    );
    upgradePrincipals.set(req, principal);
    return principal;
  }

  private async authenticate(k: Knock): Promise<Principal> {
    const failures = this.config.rateLimits.enabled ? this.config.rateLimits.perMinute.auth_failures : 0;
    const failureId = `auth_failures:ip:${k.ip}`;
    const blocked = this.limiter.peek(failureId, failures);
    const fromHeader = bearerToken(k.headers.authorization);
    // An address that sent too many wrong keys gets 429 for a while, but a key that was live when
    // last seen is still checked: one client guessing keys must not lock out the others behind
    // the same proxy or NAT.
    if (!blocked.allowed && !this.keys.provenGood(fromHeader ?? k.queryToken ?? ''))
      throw new RateLimitError(blocked.retryAfter, failures, 'auth_failures');
    if (fromHeader === null) {
      this.refusals.auth.malformed_header++;
      throw unauthorized(
        'The Authorization header must be "Bearer <API key>" (or "Token <API key>", or Basic with the key as the password)',
      );
    }
    const token = fromHeader ?? k.queryToken;
    if (!token) {
      this.refusals.auth.missing_key++;
      throw unauthorized(
        'An API key is required: send "Authorization: Bearer <API key>" (create keys with `make key` or POST /api/v1/auth/keys)',
      );
    }
    const principal = await this.keys.authenticate(token);
    if (!principal) {
      this.refusals.auth.invalid_key++;
      this.limiter.take(failureId, failures);
      throw unauthorized('Unknown, revoked or expired API key');
    }
    return principal;
  }

  /**
   * Without keys, a browser on another site must not be able to use the API through the user's
   * machine: a cross-site request (Origin of another host, Sec-Fetch-Site cross-site) is refused,
   * and when bound to loopback only loopback host names are answered (DNS rebinding).
   */
  private refuseCrossSite(k: Knock): void {
    const host = typeof k.headers.host === 'string' ? k.headers.host : '';
    if (isLoopbackHost(this.config.host) && host && !isLoopbackHost(hostName(host))) {
      throw new ApiError(
        403,
        'FORBIDDEN',
        `Host ${host} is not this machine: with AUTH off Timescope answers only to localhost names`,
      );
    }
    const origin = k.headers.origin;
    if (typeof origin === 'string' && origin !== 'null' && originHost(origin) !== originHost(`http://${host}`)) {
      throw new ApiError(
        403,
        'FORBIDDEN',
        `Cross-origin request from ${origin} refused (AUTH is off; Timescope does not serve other sites)`,
      );
    }
    if (
      origin === 'null' ||
      (k.headers['sec-fetch-site'] === 'cross-site' && (MUTATING.has(k.method) || k.headers.upgrade))
    ) {
      throw new ApiError(
        403,
        'FORBIDDEN',
        'Cross-site request refused (AUTH is off; Timescope does not serve other sites)',
      );
    }
  }

  /** A body only in the route's content types (JSON by default): a form post gets 415, never a handler. */
  private checkBody(k: Knock, route: RouteAccess | undefined): void {
    const length = k.headers['content-length'];
    const hasBody = k.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    if (!hasBody) return;
    const type = (k.headers['content-type'] ?? '').split(';', 1)[0].trim().toLowerCase();
    const allowed = route?.contentTypes ?? ['application/json'];
    if (!allowed.includes(type)) {
      throw new ApiError(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `Content-Type must be ${allowed.map((t) => t || 'none').join(' or ')}${type ? ` (got ${type})` : ' (none given)'}`,
        {
          header: 'content-type',
          accepted: allowed,
        },
      );
    }
  }
}

/** Who opened each admitted WebSocket (admitUpgrade), for the session that serves it. */
const upgradePrincipals = new WeakMap<IncomingMessage, Principal>();

/** Who opened this WebSocket (`anonymous` when AUTH is off). */
export function upgradePrincipalOf(req: IncomingMessage): Principal {
  return upgradePrincipals.get(req) ?? ANONYMOUS;
}

/** Who sent this request (set by the front door; `anonymous` when AUTH is off). */
export function principalOf(req: FastifyRequest): Principal {
  return (req as FastifyRequest & { principal?: Principal }).principal ?? ANONYMOUS;
}

/** The access a matched route declared with @Access; HEALTH for the health checks. */
function routeOf(req: FastifyRequest): RouteAccess | undefined {
  const config = req.routeOptions?.config as Partial<RouteAccess> | undefined;
  if (!config?.access) {
    // A route that forgot to declare its access is for admin keys only; an unknown path needs any key (401 before 404).
    const matched = req.routeOptions?.url !== undefined && !DOCS.test(req.routeOptions.url);
    return matched ? UNDECLARED : undefined;
  }
  if (config.access === 'public' && !config.rate) return HEALTH;
  return config as RouteAccess;
}

function queryToken(v: unknown): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' && s ? s : undefined;
}

function hostName(hostHeader: string): string {
  const h = hostHeader.toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  return h.split(':', 1)[0];
}

/** host[:port] of an origin, without the scheme's default port (http://h:80 is http://h). */
function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}
