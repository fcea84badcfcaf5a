import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseKeySpec } from '../../src/auth/key-spec.js';
import { bearerToken, generateKey, grants, hashKey, looksLikeKey } from '../../src/auth/keys.js';
import { RateLimiter } from '../../src/auth/rate-limiter.js';
import { ApiError } from '../../src/common/errors.js';
import { authEnabled, isLoopbackHost } from '../../src/config/config.js';

describe('API keys', () => {
  it('are 256 random bits with a prefix, told apart by their first characters, stored as SHA-256', () => {
    const a = generateKey();
    const b = generateKey();
    assert.notEqual(a.key, b.key);
    assert.ok(looksLikeKey(a.key));
    assert.equal(a.prefix, a.key.slice(0, 12));
    assert.deepEqual(a.hash, hashKey(a.key));
    assert.equal(a.hash.length, 32);
    assert.ok(!looksLikeKey(`${a.key}x`) && !looksLikeKey('tsk_short') && !looksLikeKey(a.key.replace('tsk_', 'xyz_')));
  });

  it('read a bearer header strictly', () => {
    assert.equal(bearerToken(undefined), undefined);
    assert.equal(bearerToken('Bearer tsk_abc'), 'tsk_abc');
    assert.equal(bearerToken('bearer   tsk_abc '), 'tsk_abc');
    assert.equal(bearerToken('Basic dXNlcg=='), null, 'basic without a password');
    assert.equal(bearerToken(`Basic ${Buffer.from('telegraf:tsk_abc').toString('base64')}`), 'tsk_abc');
    assert.equal(bearerToken('Token tsk_abc'), 'tsk_abc');
    assert.equal(bearerToken('Bearer'), null);
    assert.equal(bearerToken('Bearer a b'), null);
    assert.equal(bearerToken(['Bearer a', 'Bearer b']), null);
  });

  it('grant admin everything, and read and ingest only themselves', () => {
    assert.ok(grants(['admin'], 'read') && grants(['admin'], 'ingest') && grants(['admin'], 'admin'));
    assert.ok(grants(['read'], 'read') && !grants(['read'], 'ingest') && !grants(['read'], 'admin'));
    assert.ok(grants(['ingest'], 'ingest') && !grants(['ingest'], 'read'));
  });

  it('are requested with a name, scopes, an optional future expiry and per-class limits; problems name their field', () => {
    assert.deepEqual(parseKeySpec({ name: 'ci', scopes: ['ingest', 'ingest', 'read'], rate_limits: { ingest: 0 } }), {
      name: 'ci',
      scopes: ['ingest', 'read'],
      expiresAt: null,
      rateLimits: { ingest: 0 },
    });
    const fields = (body: unknown) => {
      try {
        parseKeySpec(body, Date.parse('2026-01-01T00:00:00Z'));
      } catch (err) {
        return ((err as ApiError).details!.errors as Array<{ field: string }>).map((e) => e.field);
      }
      return [];
    };
    assert.deepEqual(fields([]), ['body']);
    assert.deepEqual(fields({ name: ' padded', scopes: 'admin' }), ['name', 'scopes']);
    assert.deepEqual(
      fields({
        name: 'x',
        scopes: ['read'],
        expires_at: '2025-06-01T00:00:00Z',
        rate_limits: { reads: 1, ingest: 1.5 },
      }),
      ['expires_at', 'rate_limits.reads', 'rate_limits.ingest'],
    );
    assert.deepEqual(
      fields({ name: 'x', scopes: ['read'], expires_at: '2026-06-01T00:00:00' }),
      ['expires_at'],
      'a date-time without a zone',
    );
  });
});

describe('rate limiter', () => {
  it("lets a client burst a minute's worth, then refills continuously, and says when to come back", () => {
    let now = 0;
    const rl = new RateLimiter(1_000, () => now);
    for (let i = 0; i < 6; i++) assert.ok(rl.take('a', 6).allowed, `request ${i}`);
    const refused = rl.take('a', 6);
    assert.deepEqual(refused, { allowed: false, remaining: 0, retryAfter: 10 });
    now += 9_999;
    assert.equal(rl.take('a', 6).allowed, false);
    now += 1;
    assert.equal(rl.take('a', 6).allowed, true);
    assert.equal(rl.take('b', 6).remaining, 5, 'another client has its own bucket');
    now += 3_600_000;
    assert.equal(rl.take('a', 6).remaining, 5, 'a bucket never holds more than a minute');
  });

  it('treats 0 as unlimited and peek as a look without taking', () => {
    const rl = new RateLimiter(10, () => 0);
    for (let i = 0; i < 100; i++) assert.ok(rl.take('x', 0).allowed);
    assert.equal(rl.size, 0);
    assert.ok(rl.peek('y', 1).allowed);
    assert.ok(rl.peek('y', 1).allowed);
    rl.take('y', 1);
    assert.equal(rl.peek('y', 1).allowed, false);
  });

  it('keeps at most maxClients buckets, dropping the least recently used', () => {
    const rl = new RateLimiter(100, () => 0);
    rl.take('hot', 1_000);
    for (let i = 0; i < 10_000; i++) {
      rl.take(`ip-${i}`, 10);
      if (i % 50 === 0) rl.take('hot', 1_000);
      assert.ok(rl.size <= 100);
    }
    assert.equal(rl.take('hot', 1_000).remaining, 1_000 - 202, 'a client in use kept its bucket through 10,000 others');
  });
});

describe('AUTH=auto', () => {
  it('is off only on the embedded default bound to a loopback address', () => {
    assert.equal(authEnabled('auto', undefined, '127.0.0.1'), false);
    assert.equal(authEnabled('auto', undefined, 'localhost'), false);
    assert.equal(authEnabled('auto', undefined, '::1'), false);
    assert.equal(authEnabled('auto', undefined, '0.0.0.0'), true);
    assert.equal(authEnabled('auto', 'postgres://db/x', '127.0.0.1'), true);
    assert.equal(authEnabled('off', 'postgres://db/x', '0.0.0.0'), false);
    assert.equal(authEnabled('on', undefined, '127.0.0.1'), true);
    assert.ok(
      isLoopbackHost('127.0.0.53') &&
        isLoopbackHost('[::1]') &&
        !isLoopbackHost('10.0.0.1') &&
        !isLoopbackHost('127.example.com'),
    );
  });
});
