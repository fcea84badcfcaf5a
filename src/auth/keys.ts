import { createHash, randomBytes } from 'node:crypto';

/**
 * API keys, as pure functions. A key is `tsk_` followed by 32 random bytes in base64url (256 bits,
 * so a plain SHA-256 is a safe way to store it: there is nothing to brute-force that a slow hash
 * would protect). Only the hash is stored; the key is shown once, when it is created.
 */
export const SCOPES = ['read', 'ingest', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

const KEY_PREFIX = 'tsk_';
const KEY_SHAPE = /^tsk_[A-Za-z0-9_-]{43}$/;

export interface NewKey {
  key: string;
  /** The first characters, kept to tell keys apart in listings (`tsk_AbC12xYz`). */
  prefix: string;
  hash: Buffer;
}

export function generateKey(): NewKey {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, prefix: key.slice(0, KEY_PREFIX.length + 8), hash: hashKey(key) };
}

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export function looksLikeKey(s: string): boolean {
  return KEY_SHAPE.test(s);
}

/**
 * The key of an Authorization header: undefined when there is no header, null when there is one
 * but it carries no key. `Bearer <key>` is ours; `Token <key>` is what InfluxDB v2 clients and
 * Telegraf send, and `Basic base64(user:key)` what InfluxDB v1 clients, Prometheus' basic_auth and
 * Grafana send (the user name is ignored: the key says who it is).
 */
export function bearerToken(header: string | string[] | undefined): string | null | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string') return null;
  const m = /^(Bearer|Token|Basic)[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) return null;
  if (m[1].toLowerCase() !== 'basic') return m[2];
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : null;
}

/** `admin` holds every scope; `read` and `ingest` only themselves. */
export function grants(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes('admin') || scopes.includes(needed);
}
