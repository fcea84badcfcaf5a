import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { isRetryable, retryDelayMs, signPayload } from '../../src/webhooks/delivery.js';
import { addressProblem, checkWebhookUrl, ResolvedAddress, Resolver } from '../../src/webhooks/url-guard.js';

/** A DNS stub: names map to fixed answers; nothing is ever looked up for real. */
const dns = (table: Record<string, string[]>): Resolver => async (host) => {
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
    assert.equal((await checkWebhookUrl('https://hooks.example.com/x?y=1', strict, resolver)).host, 'hooks.example.com');
    await checkWebhookUrl('http://v6.example.com:8080/x', strict, resolver);
    await checkWebhookUrl('https://93.184.216.34/x', strict, resolver);
  });
  it('allows private targets only when WEBHOOK_ALLOW_PRIVATE is set, and never link-local', () => {
    assert.equal(addressProblem('10.0.0.1', { allowPrivate: true }), undefined);
    assert.equal(addressProblem('127.0.0.1', { allowPrivate: true }), undefined);
    assert.match(String(addressProblem('169.254.169.254', { allowPrivate: true })), /linkLocal/);
    assert.match(String(addressProblem('10.0.0.1', strict)), /private/);
  });
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
    assert.equal(retryDelayMs(1, 1000, 60_000, undefined, () => 0), 500);
    assert.equal(retryDelayMs(1, 1000, 60_000, undefined, () => 1), 1000);
    assert.equal(retryDelayMs(4, 1000, 60_000, undefined, () => 1), 8000);
    assert.equal(retryDelayMs(20, 1000, 60_000, undefined, () => 1), 60_000);
    assert.equal(retryDelayMs(1, 1000, 60_000, 30, () => 0), 30_000);
  });
});
