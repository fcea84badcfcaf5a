import type { OpenAPIObject } from '@nestjs/swagger';
import { Logger } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from '../common/error-envelope.js';
import { invalidQuery } from '../common/errors.js';
import { operations } from './document.js';

/** What a route takes in its query string: these names, or anything (`x-open-query`). */
type Allowed = ReadonlySet<string> | 'open';

/** `/api/v1/pipelines/:id(^\d+$)/run` (fastify) → `/api/v1/pipelines/{id}/run` (OpenAPI). */
export function openApiPath(routeUrl: string): string {
  const p = routeUrl.replace(/:([A-Za-z0-9_]+)(\((?:[^()\\]|\\.)*\))?/g, '{$1}');
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * The unknown-parameter rule: a query parameter that the route does not declare in the OpenAPI
 * document is a 400 INVALID_QUERY naming it, so that a misspelt `metirc=` or `agregation=` is not
 * silently ignored. The declared parameters come from the document itself, so the rule and the
 * documentation are the same list. Routes outside the document (Swagger UI, static files), the
 * page at `/` and wildcard routes are not checked; a route marked `@OpenQuery` takes anything.
 */
export class QueryParameterRule {
  private readonly routes = new Map<string, Allowed>();
  /** `allowed` per method and fastify route URL: the path rewrite is a regular-expression replace, not worth paying per request. */
  private readonly byRoute = new Map<string, Allowed | undefined>();

  constructor(doc: OpenAPIObject) {
    for (const { path, method, op } of operations(doc)) {
      const open = (op as Record<string, unknown>)['x-open-query'] !== undefined;
      const names = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      this.routes.set(`${method} ${path}`, open ? 'open' : new Set(names));
    }
  }

  /** The parameters `method routeUrl` takes; undefined when the route is not checked. */
  allowed(method: string, routeUrl: string): Allowed | undefined {
    const key = `${method} ${routeUrl}`; // routes are finite, so is this map
    if (this.byRoute.has(key)) return this.byRoute.get(key);
    const m = method === 'HEAD' ? 'get' : method.toLowerCase();
    const found =
      routeUrl === '/' || routeUrl.includes('*') ? undefined : this.routes.get(`${m} ${openApiPath(routeUrl)}`);
    this.byRoute.set(key, found);
    return found;
  }

  /** Throws the 400 for the first parameter the route does not take. */
  check(method: string, routeUrl: string, query: Record<string, unknown>): void {
    const allowed = this.allowed(method, routeUrl);
    if (allowed === undefined || allowed === 'open') return;
    for (const name of Object.keys(query)) {
      if (allowed.has(name)) continue;
      const known = [...allowed];
      throw invalidQuery(
        name,
        `unknown query parameter ${JSON.stringify(name.slice(0, 64))}` +
          (known.length ? ` (this route takes ${known.join(', ')})` : ' (this route takes no query parameters)'),
        { allowed: known },
      );
    }
  }
}

/** Installs the rule as an onRequest hook (after the front door's: a request without a key gets its 401 first). */
export function installQueryParameterRule(fastify: FastifyInstance, doc: OpenAPIObject): QueryParameterRule {
  const rule = new QueryParameterRule(doc);
  const logger = new Logger('http');
  fastify.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.url.includes('?')) return;
    const url = req.routeOptions?.url;
    if (url === undefined) return;
    try {
      rule.check(req.method, url, (req.query ?? {}) as Record<string, unknown>);
    } catch (err) {
      sendError(reply, err, logger);
      return reply;
    }
  });
  return rule;
}
