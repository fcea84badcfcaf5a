import ipaddr from 'ipaddr.js';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * Server-side request forgery guard for outgoing webhooks (reliability.md row 36, OWASP API7).
 * A URL is checked when it is saved and again when it is sent; at send time the connection goes to
 * the very address that was checked (no second DNS answer can slip in). Only http(s), no
 * credentials in the URL, and only public unicast addresses: IPv4 outside the special ranges, IPv6
 * inside global unicast (2000::/3) and outside its special ranges. Loopback, private, link-local,
 * unique-local, CGNAT, multicast, unspecified, reserved and documentation ranges are refused, and
 * so is every IPv6 form that tunnels to an IPv4 address (the deprecated compatible `::a.b.c.d` that
 * WHATWG URL writes for `[::127.0.0.1]`, SIIT `::ffff:0:a.b.c.d`, 6to4 `2002::/16`, Teredo
 * `2001::/32`, local-use NAT64 `64:ff9b:1::/48`). Mapped `::ffff:a.b.c.d` and well-known NAT64
 * `64:ff9b::/96` are judged by the IPv4 address inside (the socket goes there), so they pass only
 * where that address would, e.g. loopback with WEBHOOK_ALLOW_PRIVATE. Names that resolve to any
 * of them are refused too. Cloud metadata endpoints (addresses and names) are refused even with
 * WEBHOOK_ALLOW_PRIVATE. Redirects are never followed.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** DNS resolution, injectable so tests never depend on (or send traffic to) real hosts. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

export class UnsafeUrlError extends Error {}

export interface GuardOptions {
  /** WEBHOOK_ALLOW_PRIVATE: also allow private, loopback, unique-local and CGNAT targets (on-premises receivers). */
  allowPrivate: boolean;
}

/**
 * Cloud metadata and platform endpoints: refused whatever WEBHOOK_ALLOW_PRIVATE says. Most sit in
 * 169.254.0.0/16 (refused anyway); these are listed so that the ones in ranges WEBHOOK_ALLOW_PRIVATE
 * opens (CGNAT, unique-local) or in public space stay closed, and so the refusal names them.
 */
const METADATA_RANGES: Array<[string, number, string]> = [
  ['169.254.169.254', 32, 'AWS, GCP, Azure, OCI, OpenStack and DigitalOcean instance metadata'],
  ['169.254.170.2', 32, 'AWS ECS task metadata and credentials'],
  ['169.254.0.23', 32, 'Tencent Cloud metadata'],
  ['100.100.100.200', 32, 'Alibaba Cloud metadata'],
  ['192.0.0.192', 32, 'Oracle Cloud metadata'],
  ['168.63.129.16', 32, 'Azure platform (WireServer)'],
  ['fd00:ec2::', 32, 'AWS instance metadata, DNS and time over IPv6 (fd00:ec2::254 and its neighbours)'],
  ['fd20:ce::254', 128, 'GCP instance metadata over IPv6'],
];
const METADATA = METADATA_RANGES.map(([a, bits, what]) => ({ range: ipaddr.parseCIDR(`${a}/${bits}`), what }));
/** Names of metadata endpoints, refused before any DNS (a resolver may answer them differently). */
const METADATA_NAMES = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
]);

/** Ranges WEBHOOK_ALLOW_PRIVATE opens (metadata endpoints inside them stay closed). */
const PRIVATE_RANGES = new Set(['private', 'loopback', 'uniqueLocal', 'carrierGradeNat']);
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

function metadataOf(ip: ipaddr.IPv4 | ipaddr.IPv6): string | undefined {
  for (const m of METADATA) if (ip.kind() === m.range[0].kind() && ip.match(m.range)) return m.what;
  return undefined;
}

/** Why this address may not be contacted, or undefined when it is a public unicast address. */
export function addressProblem(address: string, opts: GuardOptions): string | undefined {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  const ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv4') return ipv4Problem(address, ip as ipaddr.IPv4, opts);
  const v6 = ip as ipaddr.IPv6;
  const metadata = metadataOf(v6);
  if (metadata) return `${address} is a cloud metadata address (${metadata})`;
  const bytes = v6.toByteArray();
  const inner = () => ipaddr.IPv4.parse(bytes.slice(12).join('.'));
  // The socket goes to the IPv4 address inside: judge that one.
  if (v6.isIPv4MappedAddress()) return ipv4Problem(address, v6.toIPv4Address(), opts);
  if (v6.match(NAT64_WELL_KNOWN)) return ipv4Problem(address, inner(), opts);
  const range = v6.range();
  if (range === 'loopback' || range === 'unspecified')
    return opts.allowPrivate && range === 'loopback' ? undefined : `${address} is a ${range} address`;
  // ::/96 is the deprecated IPv4-compatible form (`[::127.0.0.1]` is written `[::7f00:1]`).
  if (bytes.slice(0, 12).every((b) => b === 0))
    return `${address} is an IPv4-compatible address (${inner()}), a deprecated form that is never allowed`;
  if (range === 'rfc6145') return `${address} is an IPv4-translated address (${inner()})`;
  if (range === 'rfc6052') return `${address} is a local-use NAT64 address`;
  if (range === '6to4')
    return `${address} is a 6to4 address (it tunnels to ${ipaddr.IPv4.parse(bytes.slice(2, 6).join('.'))}), never allowed`;
  if (range === 'teredo') return `${address} is a Teredo address (it tunnels to an IPv4 host), never allowed`;
  if (opts.allowPrivate && PRIVATE_RANGES.has(range)) return undefined;
  if (range !== 'unicast' || !v6.match(GLOBAL_UNICAST_V6))
    return `${address} is ${range === 'unicast' ? 'outside global unicast (2000::/3)' : `a ${range} address`}`;
  return undefined;
}

function ipv4Problem(address: string, ip: ipaddr.IPv4, opts: GuardOptions): string | undefined {
  const shown = address === ip.toString() ? address : `${address} (${ip})`;
  const metadata = metadataOf(ip);
  if (metadata) return `${shown} is a cloud metadata address (${metadata})`;
  const range = ip.range();
  if (range === 'unicast') return undefined;
  if (opts.allowPrivate && PRIVATE_RANGES.has(range)) return undefined;
  return `${shown} is a ${range} address`;
}

/** Static checks that need no DNS: scheme, credentials, literal addresses and local names. */
export function parseWebhookUrl(text: string, opts: GuardOptions): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UnsafeUrlError('is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UnsafeUrlError(`scheme ${url.protocol.replace(':', '')} is not allowed (http or https only)`);
  if (url.username || url.password) throw new UnsafeUrlError('must not carry credentials; use the webhook secret');
  const host = url.hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  if (!host) throw new UnsafeUrlError('has no host');
  if (isIP(host)) {
    const problem = addressProblem(host, opts);
    if (problem) throw new UnsafeUrlError(`points to an internal address (${problem})`);
  } else if (METADATA_NAMES.has(host)) {
    throw new UnsafeUrlError(`points to a cloud metadata name (${host})`);
  } else if (
    !opts.allowPrivate &&
    (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host.endsWith('.local'))
  ) {
    throw new UnsafeUrlError(`points to an internal name (${host})`);
  }
  return url;
}

/**
 * The addresses to connect to for `url`: every address the name resolves to must be public,
 * otherwise the URL is refused (a name with one internal address among public ones is refused).
 */
export async function resolveWebhookTarget(
  url: URL,
  opts: GuardOptions,
  resolver: Resolver,
): Promise<ResolvedAddress[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
  let addresses: ResolvedAddress[];
  try {
    addresses = await resolver(host);
  } catch (err) {
    throw new UnsafeUrlError(
      `host ${host} does not resolve (${(err as { code?: string }).code ?? (err as Error).message})`,
    );
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
