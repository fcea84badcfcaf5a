import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from './url-guard.js';

/** Pure parts of webhook delivery: signing, retry policy, and the HTTP transport. */

export const SIGNATURE_HEADER = 'x-timescope-signature';

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the scheme Stripe made familiar): a
 * receiver recomputes the HMAC with the shared secret and rejects old timestamps to stop replays.
 */
export function signPayload(secret: string, unixSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** Whether a failed attempt is worth repeating: network trouble, timeouts, 408, 425, 429 and 5xx. */
export function isRetryable(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * Delay before attempt `attempt + 1` (attempt counts from 1): exponential from `baseMs`, capped,
 * with "equal jitter" (half the backoff, plus a random share of the other half) so that many
 * failing webhooks do not retry in lockstep; a receiver's Retry-After wins when it asks for longer.
 */
export function retryDelayMs(
  attempt: number,
  baseMs: number,
  capMs: number,
  retryAfterSeconds?: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  const jittered = exp / 2 + random() * (exp / 2);
  return retryAfterSeconds !== undefined ? Math.min(Math.max(jittered, retryAfterSeconds * 1000), 3_600_000) : jittered;
}

export interface WebhookRequest {
  url: URL;
  /** The checked address: the connection goes there and nowhere else. */
  address: ResolvedAddress;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

export interface WebhookResponse {
  status: number;
  retryAfterSeconds?: number;
}

export type WebhookTransport = (req: WebhookRequest) => Promise<WebhookResponse>;

/**
 * A Retry-After header in seconds, in either form RFC 9110 allows: a number of seconds or an HTTP
 * date (seconds from `now` until then, 0 when it is past); undefined when absent or unreadable.
 */
export function retryAfterSeconds(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = /[a-z]/i.test(text) ? Date.parse(text) : NaN;
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : undefined;
}

/**
 * POST with node:http(s). The socket is opened to the pre-checked address (the `lookup` hook), the
 * TLS name stays the URL's host, and redirects are not followed. The receiver's answer is its
 * status line and headers: they must come within `timeoutMs` of the start (a deadline on the whole
 * exchange, not only on a silent socket: a receiver trickling bytes was never cut off); its body is
 * not read, stored or echoed.
 */
export const nodeTransport: WebhookTransport = (req) =>
  new Promise((resolve, reject) => {
    const pinned: LookupFunction = (_hostname, options, callback) => {
      const cb = callback as (
        err: Error | null,
        address: string | Array<{ address: string; family: number }>,
        family?: number,
      ) => void;
      if ((options as { all?: boolean }).all) cb(null, [{ address: req.address.address, family: req.address.family }]);
      else cb(null, req.address.address, req.address.family);
    };
    const mod = req.url.protocol === 'https:' ? https : http;
    const r = mod.request(
      req.url,
      {
        method: 'POST',
        headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
        lookup: pinned,
        agent: false,
      },
      (res) => {
        clearTimeout(deadline);
        resolve({
          status: res.statusCode ?? 0,
          retryAfterSeconds: retryAfterSeconds(res.headers['retry-after']),
        });
        res.destroy(); // the body is not needed (and the connection is not reused: agent: false)
      },
    );
    const deadline = setTimeout(() => r.destroy(new Error(`no answer within ${req.timeoutMs} ms`)), req.timeoutMs);
    r.on('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    r.end(req.body);
  });
