import ipaddr from 'ipaddr.js';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Server-side request forgery guard for outgoing webhooks (reliability.md row 36, OWASP API7).
 * A URL is checked when it is saved and again when it is sent; at send time the connection goes to
 * the very address that was checked (no second DNS answer can slip in). Only http(s), no
 * credentials in the URL, and no address outside the public unicast ranges: loopback, private,
 * link-local (cloud metadata), unique-local, CGNAT, multicast, unspecified, IPv4-mapped or NAT64
 * forms of those, and names that resolve to any of them are all refused. Redirects are never followed.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** DNS resolution, injectable so tests never depend on (or send traffic to) real hosts. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

export class UnsafeUrlError extends Error {}

export interface GuardOptions {
  /** WEBHOOK_ALLOW_PRIVATE: also allow private and loopback targets (on-premises receivers). */
  allowPrivate: boolean;
}

/** Why this address may not be contacted, or undefined when it is a public unicast address. */
export function addressProblem(address: string, opts: GuardOptions): string | undefined {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  let ip = ipaddr.parse(address);
  // ::ffff:a.b.c.d and 64:ff9b::a.b.c.d reach the IPv4 address inside them.
  if (ip.kind() === 'ipv6') {
    const v6 = ip as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) ip = v6.toIPv4Address();
    else if (v6.range() === 'rfc6052') ip = ipaddr.IPv4.parse(v6.toByteArray().slice(12).join('.'));
  }
  const range = ip.range();
  if (range === 'unicast') return undefined;
  if (opts.allowPrivate && ['private', 'loopback', 'uniqueLocal', 'carrierGradeNat'].includes(range)) return undefined;
  return `${address} is a ${range} address`;
}

/** Static checks that need no DNS: scheme, credentials, literal addresses and local names. */
export function parseWebhookUrl(text: string, opts: GuardOptions): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UnsafeUrlError('is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UnsafeUrlError(`scheme ${url.protocol.replace(':', '')} is not allowed (http or https only)`);
  if (url.username || url.password) throw new UnsafeUrlError('must not carry credentials; use the webhook secret');
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (!host) throw new UnsafeUrlError('has no host');
  if (isIP(host)) {
    const problem = addressProblem(host, opts);
    if (problem) throw new UnsafeUrlError(`points to an internal address (${problem})`);
  } else if (!opts.allowPrivate && (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host.endsWith('.local'))) {
    throw new UnsafeUrlError(`points to an internal name (${host})`);
  }
  return url;
}

/**
 * The addresses to connect to for `url`: every address the name resolves to must be public,
 * otherwise the URL is refused (a name with one internal address among public ones is refused).
 */
export async function resolveWebhookTarget(url: URL, opts: GuardOptions, resolver: Resolver): Promise<ResolvedAddress[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
  let addresses: ResolvedAddress[];
  try {
    addresses = await resolver(host);
  } catch (err) {
    throw new UnsafeUrlError(`host ${host} does not resolve (${(err as { code?: string }).code ?? (err as Error).message})`);
  }
  if (addresses.length === 0) throw new UnsafeUrlError(`host ${host} does not resolve`);
  for (const a of addresses) {
    const problem = addressProblem(a.address, opts);
    if (problem) throw new UnsafeUrlError(`host ${host} resolves to an internal address (${problem})`);
  }
  return addresses;
}

/** Full check as done at save time: static rules, then DNS. Returns the normalised URL. */
export async function checkWebhookUrl(text: string, opts: GuardOptions, resolver: Resolver): Promise<URL> {
  const url = parseWebhookUrl(text, opts);
  await resolveWebhookTarget(url, opts, resolver);
  return url;
}
