import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The live page's files: a fixed allowlist of names, each read once at start from a path written
 * here. A request names an entry of this table, never a path, so nothing outside it can be served
 * (`/ui/../../etc/passwd` is just a name that is not in the table).
 */
export interface StaticFile {
  body: Buffer;
  contentType: string;
  /**
   * The SHA-256 of the bytes, so a changed file gets a new one after a restart. Weak (`W/"…"`): a
   * compressing layer may send other bytes of the same file, which a strong validator would not allow.
   */
  etag: string;
}

const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url)); // dist/src/web → web/
const require = createRequire(import.meta.url);

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** Public name → file on disk. `index.html` is served at `/`, the others at `/ui/<name>`. */
export const ALLOWLIST: Readonly<Record<string, () => string>> = Object.freeze({
  'index.html': () => WEB_DIR + 'index.html',
  'app.js': () => WEB_DIR + 'app.js',
  'live.js': () => WEB_DIR + 'live.js',
  'style.css': () => WEB_DIR + 'style.css',
  // uPlot from node_modules (a dependency), never from a CDN.
  'uPlot.esm.js': () => require.resolve('uplot/dist/uPlot.esm.js'),
  'uPlot.min.css': () => require.resolve('uplot/dist/uPlot.min.css'),
});

/**
 * The page allows only its own scripts, styles and API: no inline script or style, no eval, no
 * other origin, no framing, no plugins.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The headers of every answer: the policy, no MIME sniffing, no referrer, and `no-cache` (a browser
 * keeps the file but asks each time with If-None-Match, answered 304 when unchanged: without a
 * build step the names carry no version, so a longer lifetime could pair a new page with an old
 * script after an upgrade).
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-cache',
});

/** Reads every file of the allowlist; a missing one stops the start (a broken image, said at once). */
export function loadStaticFiles(): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const [name, where] of Object.entries(ALLOWLIST)) {
    const path = where();
    let body: Buffer;
    try {
      body = readFileSync(path);
    } catch (err) {
      throw new Error(`live page: cannot read ${name} (${path}); is web/ next to dist/?`, { cause: err });
    }
    const ext = name.slice(name.lastIndexOf('.') + 1);
    const etag = `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    files.set(name, { body, contentType: TYPES[ext], etag });
  }
  return files;
}

/** Whether an If-None-Match header names this ETag (a list, weak forms and `*` included). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === opaque); // weak comparison (RFC 9110)
}
