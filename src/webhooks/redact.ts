/**
 * Webhook URLs can carry their receiver's secret (Slack's and many others' live in the path, some
 * in the query). They are shown in full only to keys that may change them (admin); other keys see
 * where the webhook goes, its scheme and host, and not the rest.
 */

/** `https://hooks.example.com/…` for `https://hooks.example.com/services/T0/B0/secret?x=1`. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '…';
  }
  const rest = u.pathname !== '/' || u.search !== '' || u.hash !== '';
  return `${u.protocol}//${u.host}/${rest ? '…' : ''}`;
}

/** Webhook URLs in an answer: the string values of `url` and `webhook` keys, at any depth. */
const URL_KEYS = new Set(['url', 'webhook']);

/** A copy of `value` with every webhook URL redacted (redactUrl); `value` itself is left as it is. */
export function redactWebhookUrls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactWebhookUrls);
  if (value === null || typeof value !== 'object' || value instanceof Date || Buffer.isBuffer(value)) return value;
  const toJSON = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof toJSON === 'function') return redactWebhookUrls(toJSON.call(value));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value))
    out[k] = URL_KEYS.has(k) && typeof v === 'string' ? redactUrl(v) : redactWebhookUrls(v);
  return out;
}
