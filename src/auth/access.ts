import { applyDecorators } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiBearerAuth, ApiResponse } from '@nestjs/swagger';
import type { RateClass } from '../config/config.js';
import type { Scope } from './keys.js';

/**
 * What a route needs from the front door. Every route declares it with `@Access(...)`; a route
 * without a declaration is refused to everyone but admin keys (closed by default), and a test lists
 * every registered route to check that none is left undeclared.
 */
export type AccessLevel = 'public' | 'any' | Scope;

export interface RouteAccess {
  access: AccessLevel;
  /** The rate-limit class; by default `ingest`, `query` (read) or `admin` after the scope. */
  rate?: RateClass;
  /** Content types accepted for a request body (default `application/json` only). */
  contentTypes?: string[];
  /** The key may also come as `?access_token=` (streams: browsers' EventSource and WebSocket cannot set headers). */
  tokenInQuery?: boolean;
  /**
   * The answer holds webhook URLs, which can carry their receiver's secret: in full for admin keys,
   * for other keys only their scheme and host (src/webhooks/redact.ts).
   */
  webhookUrls?: true;
}

export const DEFAULT_RATE_CLASS: Record<AccessLevel, RateClass | undefined> = {
  public: undefined,
  any: 'query',
  read: 'query',
  ingest: 'ingest',
  admin: 'admin',
};

export function Access(access: AccessLevel, opts: Omit<RouteAccess, 'access'> = {}) {
  const config: RouteAccess = { access, ...opts };
  if (access === 'public') return applyDecorators(RouteConfig(config));
  return applyDecorators(
    RouteConfig(config),
    ApiBearerAuth('api-key'),
    ApiResponse({ status: 401, description: 'UNAUTHORIZED: no key, or an unknown, revoked or expired key' }),
    ...(access === 'any'
      ? []
      : [ApiResponse({ status: 403, description: `FORBIDDEN: the key lacks the \`${access}\` scope` })]),
    ApiResponse({ status: 429, description: 'RATE_LIMIT_EXCEEDED, with Retry-After' }),
  );
}
