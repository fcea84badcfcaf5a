import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  epochToMs,
  formatDuration,
  guessPrecision,
  parseDuration,
  parseIsoTimestamp,
  epochQueryProblem,
  parseQueryTime,
  type Precision,
  toEpochMicros,
  toIso,
  toIsoMicros,
} from '../../src/common/time.js';

describe('epochQueryProblem', () => {
  it('says which unit a bare number looks like, and passes what is not a bare number', () => {
    assert.equal(epochQueryProblem('1700000000000'), undefined);
    assert.equal(epochQueryProblem('1700000000000.5'), undefined);
    assert.equal(epochQueryProblem('now-1h'), undefined);
    assert.equal(epochQueryProblem('2024-01-15T10:30:00Z'), undefined);
    assert.match(epochQueryProblem('1700000000')!, /looks like epoch seconds \(1700000000000 in milliseconds\)/);
    assert.match(
      epochQueryProblem('1700000000000000')!,
      /looks like epoch microseconds \(1700000000000 in milliseconds\)/,
    );
    assert.match(epochQueryProblem('1700000000000000000')!, /looks like epoch nanoseconds/);
    assert.match(epochQueryProblem('6000000000')!, /too small for epoch milliseconds/);
  });
});

describe('parseIsoTimestamp', () => {
  it('reads UTC and offsets', () => {
    assert.equal(parseIsoTimestamp('2024-01-15T10:30:00Z'), Date.UTC(2024, 0, 15, 10, 30));
    assert.equal(parseIsoTimestamp('2024-01-15T12:30:00+02:00'), Date.UTC(2024, 0, 15, 10, 30));
    assert.equal(parseIsoTimestamp('2024-01-15T05:00:00-0530'), Date.UTC(2024, 0, 15, 10, 30));
    assert.equal(parseIsoTimestamp('2024-01-15 10:30Z'), Date.UTC(2024, 0, 15, 10, 30));
  });
  it('keeps milliseconds and microseconds', () => {
    assert.equal(parseIsoTimestamp('2024-01-15T10:30:00.123Z'), Date.UTC(2024, 0, 15, 10, 30, 0, 123));
    assert.equal(parseIsoTimestamp('2024-01-15T10:30:00.123456789Z'), Date.UTC(2024, 0, 15, 10, 30, 0, 123) + 0.456);
  });
  it('refuses dates without a zone and impossible dates', () => {
    for (const bad of [
      '2024-01-15T10:30:00',
      '2024-02-30T00:00:00Z',
      '2023-02-29T00:00:00Z',
      '2024-01-15T24:00:00Z',
      '2024-13-01T00:00:00Z',
      '2024-01-15',
      'yesterday',
      '',
      '2024-01-15T10:30:00+25:00',
    ]) {
      assert.ok(Number.isNaN(parseIsoTimestamp(bad)), bad);
    }
    assert.equal(parseIsoTimestamp('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
  });
});

describe('epoch numbers', () => {
  it('takes milliseconds by default and refuses other magnitudes with a hint', () => {
    assert.equal(epochToMs(1_705_314_600_000, undefined), 1_705_314_600_000);
    assert.match(String(epochToMs(1_705_314_600, undefined)), /epoch s.*precision=s/);
    assert.match(String(epochToMs(1_705_314_600_000_000, undefined)), /epoch us/);
    assert.match(String(epochToMs(1_705_314_600_000_000_000, undefined)), /epoch ns/);
    assert.match(String(epochToMs(1e30, undefined)), /ns/);
  });
  it('converts an explicit precision', () => {
    assert.equal(epochToMs(1_705_314_600, 's'), 1_705_314_600_000);
    assert.equal(epochToMs(1_705_314_600_000_000, 'us'), 1_705_314_600_000);
    assert.equal(epochToMs(1_705_314_600_000_000_000, 'ns'), 1_705_314_600_000);
  });

  it('drops digits finer than a microsecond toward the earlier one, in every precision, as line protocol does', () => {
    // JSON numbers are doubles: 1705314600123456789 is the double …456768, and its microsecond …456.
    assert.equal(epochToMs(Number('1705314600123456789'), 'ns'), 1705314600123.456);
    assert.equal(epochToMs(Number('1705314600123456.75'), 'us'), 1705314600123.456);
    assert.equal(epochToMs(Number('1705314600123.4567'), 'ms'), 1705314600123.456);
    assert.equal(epochToMs(Number('1705314600123.4567'), undefined), 1705314600123.456);
    assert.equal(epochToMs(Number('1705314600.1234565'), 's'), 1705314600123.456);
    // Before 1970, toward the earlier microsecond too (as line protocol: 1 ns before the epoch is the µs before it).
    assert.equal(epochToMs(-1, 'ns'), -0.001);
    assert.equal(epochToMs(-1001, 'ns'), -0.002);
    assert.equal(epochToMs(-1.5, 'us'), -0.002);
    // A double just below an exact microsecond keeps it: 1705314600123024000 ns is the double …023872.
    assert.equal(epochToMs(1705314600123024000, 'ns'), 1705314600123.024);
    // Every exact microsecond, written in each precision as a client would, is that microsecond.
    const digits = (us: bigint, shift: number) => {
      const neg = us < 0n;
      const t = (neg ? -us : us).toString().padStart(shift + 1, '0');
      return `${neg ? '-' : ''}${t.slice(0, t.length - shift)}.${t.slice(t.length - shift)}`;
    };
    for (let i = 0; i < 20_000; i++) {
      const us = BigInt(Math.floor((Math.random() - 0.1) * 2 ** 42 * 1000)); // |ms| < 2^42: 1830 to 2109
      const forms: Array<[Precision, string]> = [
        ['ns', (us * 1000n).toString()],
        ['us', us.toString()],
        ['ms', digits(us, 3)],
        ['s', digits(us, 6)],
      ];
      for (const [precision, text] of forms) {
        const ms = epochToMs(Number(text), precision) as number;
        assert.equal(Math.round(ms * 1000), Number(us), `${text} ${precision}`);
        assert.equal(ms, Number(us) / 1000, `${text} ${precision}`);
      }
    }
    assert.equal(guessPrecision(1.7e9), 's');
  });
});

describe('toIso', () => {
  it('formats exactly like Date#toISOString', () => {
    const samples = [
      0, 1, 999, 86_399_999, 86_400_000, 951_782_400_000, 1_705_314_600_123.9, 253_402_300_799_999, -1, -86_400_001,
      253_402_300_800_000,
    ];
    for (let i = 0; i < 5000; i++) samples.push(Math.floor(Math.random() * 4e12));
    for (const ms of samples) assert.equal(toIso(ms), new Date(Math.floor(ms)).toISOString(), String(ms));
  });
});

describe('toIsoMicros', () => {
  const T = Date.UTC(2024, 0, 15, 10); // a whole second
  it('writes milliseconds as toIso does, and microseconds only when present', () => {
    assert.equal(toIsoMicros(T), '2024-01-15T10:00:00.000Z');
    assert.equal(toIsoMicros(T + 1), '2024-01-15T10:00:00.001Z');
    assert.equal(toIsoMicros(T + 0.123), '2024-01-15T10:00:00.000123Z');
    assert.equal(toIsoMicros(T + 1.25), '2024-01-15T10:00:00.001250Z');
    assert.equal(toIsoMicros(T + 999.999), '2024-01-15T10:00:00.999999Z');
  });
  it('carries a fraction that rounds up to 1000 µs into the millisecond, second and day', () => {
    assert.equal(toIsoMicros(T + 0.9996), '2024-01-15T10:00:00.001Z');
    assert.equal(toIsoMicros(T + 999.9996), '2024-01-15T10:00:01.000Z');
    assert.equal(toIsoMicros(Date.UTC(2024, 0, 15, 23, 59, 59, 999) + 0.9999996), '2024-01-16T00:00:00.000Z');
    assert.equal(toIsoMicros(1000.0004), '1970-01-01T00:00:01.000Z');
    assert.equal(toEpochMicros(T + 999.9996), (T + 1000) * 1000);
  });
  it('handles times before 1970', () => {
    assert.equal(toIsoMicros(-1), '1969-12-31T23:59:59.999Z');
    assert.equal(toIsoMicros(-1.5), '1969-12-31T23:59:59.998500Z');
    assert.equal(toIsoMicros(-0.0006), '1969-12-31T23:59:59.999999Z');
    assert.equal(toIsoMicros(-0.0004), '1970-01-01T00:00:00.000Z');
  });
  it('reads back as the same microsecond, in the same shape (years 1900 to 2109)', () => {
    const us = fc.integer({ min: -2_208_988_800_000_000, max: 4_398_000_000_000_000 });
    fc.assert(
      fc.property(us, (n) => {
        const text = toIsoMicros(n / 1000);
        assert.match(text, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(\d{3})?Z$/);
        assert.equal(toEpochMicros(parseIsoTimestamp(text)), n, text);
        if (n % 1000 === 0) assert.equal(text, new Date(n / 1000).toISOString());
      }),
      { numRuns: 5000 },
    );
  });
});

describe('durations and query times', () => {
  it('parses and formats', () => {
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.ok(Number.isNaN(parseDuration('0s')));
    assert.ok(Number.isNaN(parseDuration('5 minutes')));
    assert.equal(formatDuration(300_000), '5m');
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(86_400_000), '1d');
  });
  it('understands now and now-<duration>', () => {
    const now = 1_700_000_000_000;
    assert.equal(parseQueryTime('now', now), now);
    assert.equal(parseQueryTime('now-1h', now), now - 3_600_000);
    assert.equal(parseQueryTime('1700000000000', now), now);
    // Digits past the microsecond are dropped toward the earlier one, as at ingest and in ISO times.
    assert.equal(parseQueryTime('1796686915485.1239', now), 1796686915485.123);
    assert.equal(parseQueryTime('1796686915485.1239', now), parseQueryTime('2026-12-07T23:41:55.4851239Z', now));
    // A bare number that does not look like epoch ms is NaN, never 1970 (epochQueryProblem says why).
    assert.ok(Number.isNaN(parseQueryTime('1700000000', now)));
    assert.ok(Number.isNaN(parseQueryTime('1700000000000000', now)));
    assert.ok(Number.isNaN(parseQueryTime('0', now)));
    assert.ok(Number.isNaN(parseQueryTime('now-1x', now)));
    // now+<duration>, also as a URL's bare + delivers it (a space).
    assert.equal(parseQueryTime('now+5m', now), now + 300_000);
    assert.equal(parseQueryTime('now 5m', now), now + 300_000);
    assert.ok(Number.isNaN(parseQueryTime('now  5m', now)));
  });
});
