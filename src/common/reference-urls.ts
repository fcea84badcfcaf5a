/**
 * system-monitor-integration.md's client posts its four reports to its base URL, without /api/v1
 * (`${baseUrl}/services/`, `/metrics/`, `/pipelines/`, `/alerts/`, always with a trailing slash).
 * They are served at the root too by rewriting those POSTs onto the /api/v1 routes before routing,
 * so each keeps one route: one access rule, one rate class, one body reader.
 *
 * Its `/pipelines/` is a pipeline STATUS report, not a pipeline definition: POST /pipelines/ and
 * POST /api/v1/pipelines/ (with the trailing slash, as that client sends it) go to
 * /api/v1/pipelines/status, whose scope is ingest; definitions are POSTed to /api/v1/pipelines.
 */
const GUIDE_POSTS: Readonly<Record<string, string>> = {
  '/services': '/api/v1/services',
  '/services/': '/api/v1/services',
  '/metrics': '/api/v1/metrics',
  '/metrics/': '/api/v1/metrics',
  '/alerts': '/api/v1/alerts',
  '/alerts/': '/api/v1/alerts',
  '/pipelines': '/api/v1/pipelines/status',
  '/pipelines/': '/api/v1/pipelines/status',
  '/api/v1/pipelines/': '/api/v1/pipelines/status',
};

/** fastify's `rewriteUrl`: the URL to route `method url` by (the query string kept). */
export function referenceUrl(method: string | undefined, url: string | undefined): string {
  if (method !== 'POST' || url === undefined) return url ?? '/';
  const q = url.indexOf('?');
  const to = GUIDE_POSTS[q < 0 ? url : url.slice(0, q)];
  return to === undefined ? url : q < 0 ? to : to + url.slice(q);
}
