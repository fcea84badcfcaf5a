import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { redactUrl, redactWebhookUrls } from '../../src/webhooks/redact.js';
import {
  isRetryable,
  nodeTransport,
  retryAfterSeconds,
  retryDelayMs,
  signPayload,
} from '../../src/webhooks/delivery.js';
import {
  addressProblem,
  checkWebhookUrl,
  ResolvedAddress,
  Resolver,
  UnsafeUrlError,
} from '../../src/webhooks/url-guard.js';

/** A DNS stub: names map to fixed answers; nothing is ever looked up for real. */
const dns =
  (table: Record<string, string[]>): Resolver =>
  async (host) => {
    const answers = table[host];
    if (!answers) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return answers.map((address): ResolvedAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
const resolver = dns({
  'hooks.example.com': ['93.184.216.34'],
  'v6.example.com': ['2606:4700::6810:84e5'],
  'rebind.example.com': ['127.0.0.1'],
  'mixed.example.com': ['93.184.216.34', '10.1.2.3'],
  'metadata.example.com': ['169.254.169.254'],
  'mapped.example.com': ['::ffff:10.0.0.1'],
});
const strict = { allowPrivate: false };

describe('webhook URL guard (reliability.md row 36)', () => {
  const refused = [
    'http://127.0.0.1:5432',
    'http://localhost/hook',
    'http://LOCALHOST./hook',
    'http://foo.localhost/',
    'http://[::1]/',
    'http://0.0.0.0/',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.1/',
    'http://192.168.1.1/',
    'http://172.16.5.4/',
    'http://100.64.0.1/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://[::ffff:127.0.0.1]/',
    'http://[fe80::1]/',
    'http://[fc00::1]/',
    'http://[64:ff9b::7f00:1]/',
    'http://224.0.0.1/',
    'http://rebind.example.com/',
    'http://mixed.example.com/',
    'http://metadata.example.com/',
    'http://mapped.example.com/',
    'http://nxdomain.example.com/',
    'http://metadata.google.internal/',
    'file:///etc/passwd',
    'gopher://hooks.example.com/',
    'ftp://hooks.example.com/',
    'http://user:pass@hooks.example.com/',
    'not a url',
  ];
  for (const url of refused) {
    it(`refuses ${url}`, async () => {
      await assert.rejects(checkWebhookUrl(url, strict, resolver));
    });
  }
  it('allows public http(s) targets', async () => {
    assert.equal(
      (await checkWebhookUrl('https://hooks.example.com/x?y=1', strict, resolver)).host,
      'hooks.example.com',
    );
    await checkWebhookUrl('http://v6.example.com:8080/x', strict, resolver);
    await checkWebhookUrl('https://93.184.216.34/x', strict, resolver);
  });
  it('allows private targets only when WEBHOOK_ALLOW_PRIVATE is set, and never link-local', () => {
    assert.equal(addressProblem('10.0.0.1', { allowPrivate: true }), undefined);
    assert.equal(addressProblem('127.0.0.1', { allowPrivate: true }), undefined);
    assert.match(String(addressProblem('169.254.169.254', { allowPrivate: true })), /metadata/);
    assert.match(String(addressProblem('169.254.1.1', { allowPrivate: true })), /linkLocal/);
    assert.match(String(addressProblem('10.0.0.1', strict)), /private/);
  });
});

/**
 * Every spelling of an internal target, as WHATWG URL (what `new URL` and so the guard sees)
 * normalises it, against both settings of WEBHOOK_ALLOW_PRIVATE. `private: 'allowed'` rows are the
 * on-premises receivers that setting exists for; metadata endpoints stay refused with it.
 */
describe('webhook URL guard: spellings, transition forms and metadata endpoints (issue 11)', () => {
  const lenient = { allowPrivate: true };
  const names = dns({
    'hooks.example.com': ['93.184.216.34'],
    'imds.example.com': ['169.254.169.254'],
    'imds6.example.com': ['fd00:ec2::254'],
    'alibaba.example.com': ['100.100.100.200'],
    'oracle.example.com': ['192.0.0.192'],
    'ecs.example.com': ['169.254.170.2'],
    'mapped-imds.example.com': ['::ffff:169.254.169.254'],
    'onprem.example.com': ['10.1.2.3'],
    'compat.example.com': ['::7f00:1'],
    'sixtofour.example.com': ['2002:7f00:1::1'],
  });
  // [url, what new URL makes of the host, strict, with WEBHOOK_ALLOW_PRIVATE]; a RegExp is the refusal's reason.
  type Row = [string, string, RegExp | 'allowed', RegExp | 'allowed'];
  const rows: Row[] = [
    // IPv6 spellings of IPv4 loopback
    ['http://[::127.0.0.1]/', '[::7f00:1]', /IPv4-compatible/, /IPv4-compatible/],
    ['http://[::7f00:1]/', '[::7f00:1]', /IPv4-compatible/, /IPv4-compatible/],
    ['http://[::ffff:7f00:1]/', '[::ffff:7f00:1]', /loopback/, 'allowed'],
    ['http://[0:0:0:0:0:ffff:127.0.0.1]/', '[::ffff:7f00:1]', /loopback/, 'allowed'],
    ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]', /loopback/, 'allowed'],
    ['http://[::ffff:0:7f00:1]/', '[::ffff:0:7f00:1]', /IPv4-translated/, /IPv4-translated/],
    ['http://[::1]/', '[::1]', /loopback/, 'allowed'],
    ['http://[0::1]/', '[::1]', /loopback/, 'allowed'],
    ['http://[::]/', '[::]', /unspecified/, /unspecified/],
    ['http://[::10.0.0.1]/', '[::a00:1]', /IPv4-compatible/, /IPv4-compatible/],
    // IPv4 spellings WHATWG URL turns into dotted quads
    ['http://2130706433/', '127.0.0.1', /loopback/, 'allowed'],
    ['http://0x7f000001/', '127.0.0.1', /loopback/, 'allowed'],
    ['http://0x7f.1/', '127.0.0.1', /loopback/, 'allowed'],
    ['http://127.1/', '127.0.0.1', /loopback/, 'allowed'],
    ['http://0177.0.0.1/', '127.0.0.1', /loopback/, 'allowed'],
    ['http://127.0.0.1./', '127.0.0.1', /loopback/, 'allowed'],
    ['http://\uff11\uff12\uff17.0.0.1/', '127.0.0.1', /loopback/, 'allowed'],
    ['http://0/', '0.0.0.0', /unspecified/, /unspecified/],
    ['http://0x0a.0.0.1/', '10.0.0.1', /private/, 'allowed'],
    // link-local, with and without a zone (WHATWG URL refuses zones: not a valid URL)
    ['http://[fe80::1]/', '[fe80::1]', /linkLocal/, /linkLocal/],
    ['http://[fe80::1%25eth0]/', '', /not a valid URL/, /not a valid URL/],
    ['http://169.254.1.1/', '169.254.1.1', /linkLocal/, /linkLocal/],
    // transition mechanisms
    ['http://[2002:7f00:1::]/', '[2002:7f00:1::]', /6to4.*127\.0\.0\.1/, /6to4/],
    ['http://[2002:5db8:d822::1]/', '[2002:5db8:d822::1]', /6to4/, /6to4/],
    ['http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', '[2001:0:4136:e378:8000:63bf:80ff:fffe]', /Teredo/, /Teredo/],
    ['http://[64:ff9b::7f00:1]/', '[64:ff9b::7f00:1]', /loopback/, 'allowed'],
    ['http://[64:ff9b::a9fe:a9fe]/', '[64:ff9b::a9fe:a9fe]', /metadata/, /metadata/],
    ['http://[64:ff9b::5db8:d822]/', '[64:ff9b::5db8:d822]', 'allowed', 'allowed'],
    ['http://[64:ff9b:1::7f00:1]/', '[64:ff9b:1::7f00:1]', /local-use NAT64/, /local-use NAT64/],
    // other IPv6 outside global unicast
    ['http://[fc00::1]/', '[fc00::1]', /uniqueLocal/, 'allowed'],
    ['http://[fec0::1]/', '[fec0::1]', /deprecatedSiteLocal/, /deprecatedSiteLocal/],
    ['http://[ff02::1]/', '[ff02::1]', /multicast/, /multicast/],
    ['http://[100::1]/', '[100::1]', /discard/, /discard/],
    ['http://[2001:db8::1]/', '[2001:db8::1]', /reserved/, /reserved/],
    ['http://[4000::1]/', '[4000::1]', /outside global unicast/, /outside global unicast/],
    ['http://[2606:4700::6810:84e5]/', '[2606:4700::6810:84e5]', 'allowed', 'allowed'],
    // cloud metadata endpoints: refused even with WEBHOOK_ALLOW_PRIVATE
    ['http://169.254.169.254/latest/meta-data/', '169.254.169.254', /metadata/, /metadata/],
    ['http://169.254.170.2/v2/credentials', '169.254.170.2', /metadata/, /metadata/],
    ['http://[fd00:ec2::254]/latest/meta-data/', '[fd00:ec2::254]', /metadata/, /metadata/],
    ['http://[fd00:ec2::23]/', '[fd00:ec2::23]', /metadata/, /metadata/],
    ['http://[fd20:ce::254]/', '[fd20:ce::254]', /metadata/, /metadata/],
    ['http://100.100.100.200/latest/meta-data/', '100.100.100.200', /metadata/, /metadata/],
    ['http://100.64.0.1/', '100.64.0.1', /carrierGradeNat/, 'allowed'],
    ['http://192.0.0.192/', '192.0.0.192', /metadata/, /metadata/],
    ['http://168.63.129.16/', '168.63.129.16', /metadata/, /metadata/],
    ['http://[::ffff:169.254.169.254]/', '[::ffff:a9fe:a9fe]', /metadata/, /metadata/],
    ['http://[::ffff:100.100.100.200]/', '[::ffff:6464:64c8]', /metadata/, /metadata/],
    ['http://2852039166/', '169.254.169.254', /metadata/, /metadata/],
    [
      'http://metadata.google.internal/computeMetadata/v1/',
      'metadata.google.internal',
      /metadata name/,
      /metadata name/,
    ],
    ['http://METADATA.google.internal./', 'metadata.google.internal.', /metadata name/, /metadata name/],
    ['http://metadata/computeMetadata/v1/', 'metadata', /metadata name/, /metadata name/],
    ['http://instance-data.ec2.internal/', 'instance-data.ec2.internal', /metadata name/, /metadata name/],
    // the DNS path: names are judged by every address they resolve to
    ['http://imds.example.com/', 'imds.example.com', /resolves to .*metadata/, /resolves to .*metadata/],
    ['http://imds6.example.com/', 'imds6.example.com', /resolves to .*metadata/, /resolves to .*metadata/],
    ['http://alibaba.example.com/', 'alibaba.example.com', /resolves to .*metadata/, /resolves to .*metadata/],
    ['http://oracle.example.com/', 'oracle.example.com', /resolves to .*metadata/, /resolves to .*metadata/],
    ['http://ecs.example.com/', 'ecs.example.com', /resolves to .*metadata/, /resolves to .*metadata/],
    ['http://mapped-imds.example.com/', 'mapped-imds.example.com', /resolves to .*metadata/, /resolves to .*metadata/],
    [
      'http://compat.example.com/',
      'compat.example.com',
      /resolves to .*IPv4-compatible/,
      /resolves to .*IPv4-compatible/,
    ],
    ['http://sixtofour.example.com/', 'sixtofour.example.com', /resolves to .*6to4/, /resolves to .*6to4/],
    ['http://onprem.example.com/', 'onprem.example.com', /resolves to .*private/, 'allowed'],
    ['http://hooks.example.com/', 'hooks.example.com', 'allowed', 'allowed'],
  ];
  for (const [url, host, whenStrict, whenPrivate] of rows) {
    it(`${url}${host ? ` (host ${host})` : ''}: ${whenStrict === 'allowed' ? 'allowed' : 'refused'}; with WEBHOOK_ALLOW_PRIVATE ${whenPrivate === 'allowed' ? 'allowed' : 'refused'}`, async () => {
      if (host) assert.equal(new URL(url).hostname, host, 'WHATWG URL normalises the host as the table says');
      else assert.throws(() => new URL(url));
      for (const [opts, want] of [
        [strict, whenStrict],
        [lenient, whenPrivate],
      ] as const) {
        if (want === 'allowed') await checkWebhookUrl(url, opts, names);
        else
          await assert.rejects(checkWebhookUrl(url, opts, names), (err: Error) => {
            assert.ok(err instanceof UnsafeUrlError, String(err));
            assert.match(err.message, want);
            return true;
          });
      }
    });
  }
});

describe('webhook signing and retries', () => {
  it('signs t.body with HMAC-SHA256', () => {
    const expected = createHmac('sha256', 's3cret').update('1700000000.{"a":1}').digest('hex');
    assert.equal(signPayload('s3cret', 1_700_000_000, '{"a":1}'), `t=1700000000,v1=${expected}`);
  });
  it('retries network errors, 408, 425, 429 and 5xx only', () => {
    for (const s of [undefined, 408, 425, 429, 500, 502, 503, 504]) assert.ok(isRetryable(s), String(s));
    for (const s of [400, 401, 403, 404, 410, 422]) assert.ok(!isRetryable(s), String(s));
  });
  it('backs off exponentially with jitter, capped, and honours Retry-After', () => {
    assert.equal(
      retryDelayMs(1, 1000, 60_000, undefined, () => 0),
      500,
    );
    assert.equal(
      retryDelayMs(1, 1000, 60_000, undefined, () => 1),
      1000,
    );
    assert.equal(
      retryDelayMs(4, 1000, 60_000, undefined, () => 1),
      8000,
    );
    assert.equal(
      retryDelayMs(20, 1000, 60_000, undefined, () => 1),
      60_000,
    );
    assert.equal(
      retryDelayMs(1, 1000, 60_000, 30, () => 0),
      30_000,
    );
  });
});

describe('webhook transport (node:http against a local receiver)', () => {
  /** A receiver on a free loopback port, for one test; `handle` gets each raw socket. */
  async function receiver(handle: (socket: net.Socket) => void) {
    const server = net.createServer(handle);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    return {
      send: (timeoutMs: number) =>
        nodeTransport({
          url: new URL(`http://127.0.0.1:${port}/hook`),
          address: { address: '127.0.0.1', family: 4 },
          headers: { 'content-type': 'application/json' },
          body: '{"a":1}',
          timeoutMs,
        }),
      close: () => {
        server.close();
        return once(server, 'close');
      },
    };
  }

  it('takes the status line as the answer, without waiting for a body the receiver trickles', async () => {
    const timers: NodeJS.Timeout[] = [];
    const r = await receiver((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nRetry-After: 7\r\nContent-Length: 100\r\n\r\n');
        timers.push(setInterval(() => socket.write('x'), 50)); // a byte every 50 ms: never idle, never done
      });
    });
    try {
      const t0 = performance.now();
      assert.deepEqual(await r.send(1000), { status: 200, retryAfterSeconds: 7 });
      assert.ok(performance.now() - t0 < 900, 'answered at the status line');
    } finally {
      timers.forEach(clearInterval);
      await r.close();
    }
  });

  it('gives up at WEBHOOK_TIMEOUT_MS on a receiver that never finishes its status line, however busy its socket', async () => {
    // One byte of the status line every 100 ms: the socket is never idle for the idle timeout, so
    // only a deadline on the whole exchange ends it (the same delivery was then sent again while
    // this one was still open, once its claim ran out).
    const timers: NodeJS.Timeout[] = [];
    const r = await receiver((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        const line = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
        let i = 0;
        const t = setInterval(() => (i < line.length ? socket.write(line.subarray(i, ++i)) : clearInterval(t)), 100);
        timers.push(t);
      });
    });
    try {
      const t0 = performance.now();
      await assert.rejects(r.send(800), /no answer within 800 ms/);
      const took = performance.now() - t0;
      assert.ok(took >= 750 && took < 2000, `gave up after ${Math.round(took)} ms`);
    } finally {
      timers.forEach(clearInterval);
      await r.close();
    }
  });
});

describe('Retry-After, in both forms RFC 9110 allows', () => {
  it('reads seconds and HTTP dates, and nothing else', () => {
    const now = Date.UTC(2026, 11, 7, 12, 0, 0);
    assert.equal(retryAfterSeconds('120', now), 120);
    assert.equal(retryAfterSeconds(' 0 ', now), 0);
    assert.equal(retryAfterSeconds('Mon, 07 Dec 2026 12:00:09 GMT', now), 9);
    assert.equal(retryAfterSeconds(new Date(now + 1500).toUTCString(), now), 1); // HTTP dates are whole seconds
    assert.equal(retryAfterSeconds('Mon, 07 Dec 2026 11:00:00 GMT', now), 0); // already past
    for (const bad of [undefined, '', '-5', '1.5', 'soon', '12abc'])
      assert.equal(retryAfterSeconds(bad, now), undefined, String(bad));
  });
});

describe('webhook URLs shown to keys without admin', () => {
  it('keeps the scheme and host, and hides the path, query and fragment', () => {
    assert.equal(redactUrl('https://hooks.slack.com/services/T0/B0/secret'), 'https://hooks.slack.com/…');
    assert.equal(redactUrl('https://h.example:8443/x?token=t'), 'https://h.example:8443/…');
    assert.equal(redactUrl('https://h.example/?token=t'), 'https://h.example/…');
    assert.equal(redactUrl('https://h.example/#t'), 'https://h.example/…');
    assert.equal(redactUrl('https://h.example/'), 'https://h.example/');
    assert.equal(redactUrl('not a url'), '…');
  });

  it('redacts `url` and `webhook` strings at any depth and leaves the rest, and the original, as they were', () => {
    const at = new Date(0);
    const answer = {
      notify: { webhook: 'https://a.example/s?k=1', email: null },
      output: { destination: 'webhook', url: 'https://b.example/p', deliveries: [{ url: 'https://c.example/q', at }] },
      name: 'url',
      count: 2,
    };
    const copy = structuredClone(answer);
    assert.deepEqual(redactWebhookUrls(answer), {
      notify: { webhook: 'https://a.example/…', email: null },
      output: { destination: 'webhook', url: 'https://b.example/…', deliveries: [{ url: 'https://c.example/…', at }] },
      name: 'url',
      count: 2,
    });
    assert.deepEqual(answer, copy);
  });
});
