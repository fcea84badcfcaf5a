import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/common/errors.js';
import { decodeAppMetrics, decodeBatches, decodeSubmission, DecodeContext } from '../../src/ingestion/decode.js';

const NOW = Date.UTC(2024, 0, 15, 10, 30);
const ctx = (over: Partial<DecodeContext> = {}): DecodeContext => ({
  now: NOW,
  limits: {
    maxPoints: 100,
    maxTags: 4,
    maxNameLength: 50,
    maxTagKeyLength: 16,
    maxTagValueLength: 32,
    maxFutureMs: 600_000,
    retentionDays: 7,
  },
  ...over,
});

/** The 400's details, or fails if the body was accepted. */
function rejects(fn: () => unknown): { status: number; field?: string; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    return { status: e.getStatus(), field: e.details?.field as string | undefined, message: e.message };
  }
  assert.fail('accepted');
}

describe('decodeSubmission', () => {
  it('reads the reference body, canonicalises tags and dedupes series', () => {
    const b = decodeSubmission(
      {
        source: 'fl_server',
        timestamp: '2024-01-15T10:30:00Z',
        metrics: [
          { name: 'cpu_usage', value: 45.2, unit: 'percent', tags: { host: 'fl-server-01', experiment_id: 'exp_001' } },
          { name: 'cpu_usage', value: 46, tags: { experiment_id: 'exp_001', host: 'fl-server-01' } },
          { name: 'active_clients', value: 5, unit: 'count', timestamp: 1_705_314_000_000 },
        ],
      },
      ctx(),
    );
    assert.equal(b.length, 3);
    // Tags in another order are the same series (one key); the batch may list it twice.
    assert.deepEqual([...new Set(b.series.map((s) => s.key))].length, 2);
    const cpu = b.series[b.seriesIndex[0]],
      cpu2 = b.series[b.seriesIndex[1]];
    assert.equal(cpu.key, cpu2.key);
    assert.equal(cpu.tagsKey, '{"experiment_id":"exp_001","host":"fl-server-01"}');
    assert.equal(cpu.unit, 'percent');
    assert.equal(b.series[b.seriesIndex[2]].metric, 'active_clients');
    assert.deepEqual([...b.times], [NOW, NOW, 1_705_314_000_000]);
    assert.deepEqual([...b.values], [45.2, 46, 5]);
  });

  it('takes the point timestamp, else the batch one, else now', () => {
    const b = decodeSubmission(
      {
        source: 's',
        metrics: [
          { name: 'a', value: 1 },
          { name: 'a', value: 2, timestamp: '2024-01-15T10:00:00Z' },
        ],
      },
      ctx(),
    );
    assert.deepEqual([...b.times], [NOW, Date.UTC(2024, 0, 15, 10)]);
  });

  it('accepts the system-monitor shape', () => {
    const b = decodeSubmission({ service: 'api', metric_type: 'cpu', value: 45.2 }, ctx());
    assert.equal(b.series[0].metric, 'cpu');
    assert.equal(b.series[0].source, 'api');
  });

  it('accepts an empty metrics array', () => {
    assert.equal(decodeSubmission({ source: 's', metrics: [] }, ctx()).length, 0);
  });

  it('names the index and field of a bad point, and rejects the whole request', () => {
    const e = rejects(() =>
      decodeSubmission(
        {
          source: 's',
          metrics: [
            { name: 'a', value: 1 },
            { name: 'b', value: '12.5' },
          ],
        },
        ctx(),
      ),
    );
    assert.equal(e.status, 400);
    assert.equal(e.field, 'metrics[1].value');
  });

  const bad: Array<[string, unknown, string]> = [
    ['null body', null, ''],
    ['string body', 'x', ''],
    ['array body', [], ''],
    ['empty object', {}, 'metrics'],
    ['missing source', { metrics: [{ name: 'a', value: 1 }] }, 'source'],
    ['value string', { source: 's', metrics: [{ name: 'a', value: 'abc' }] }, 'metrics[0].value'],
    ['value true', { source: 's', metrics: [{ name: 'a', value: true }] }, 'metrics[0].value'],
    ['value null', { source: 's', metrics: [{ name: 'a', value: null }] }, 'metrics[0].value'],
    ['value object', { source: 's', metrics: [{ name: 'a', value: {} }] }, 'metrics[0].value'],
    ['value array', { source: 's', metrics: [{ name: 'a', value: [] }] }, 'metrics[0].value'],
    ['value past 1e296', { source: 's', metrics: [{ name: 'a', value: 1.7976931348623157e308 }] }, 'metrics[0].value'],
    ['value past -1e296', { source: 's', metrics: [{ name: 'a', value: -2e296 }] }, 'metrics[0].value'],
    ['value Infinity (1e309)', { source: 's', metrics: [{ name: 'a', value: Infinity }] }, 'metrics[0].value'],
    ['value "NaN"', { source: 's', metrics: [{ name: 'a', value: 'NaN' }] }, 'metrics[0].value'],
    ['empty name', { source: 's', metrics: [{ name: '', value: 1 }] }, 'metrics[0].name'],
    ['blank name', { source: 's', metrics: [{ name: '  ', value: 1 }] }, 'metrics[0].name'],
    ['name starting with a digit', { source: 's', metrics: [{ name: '1cpu', value: 1 }] }, 'metrics[0].name'],
    ['reserved name', { source: 's', metrics: [{ name: '__name__', value: 1 }] }, 'metrics[0].name'],
    ['long name', { source: 's', metrics: [{ name: 'a'.repeat(51), value: 1 }] }, 'metrics[0].name'],
    ['SQL in a name', { source: 's', metrics: [{ name: "a'; DROP TABLE points;--", value: 1 }] }, 'metrics[0].name'],
    [
      'too many tags',
      { source: 's', metrics: [{ name: 'a', value: 1, tags: { a: '1', b: '2', c: '3', d: '4', e: '5' } }] },
      'metrics[0].tags',
    ],
    [
      'long tag value',
      { source: 's', metrics: [{ name: 'a', value: 1, tags: { a: 'x'.repeat(33) } }] },
      'metrics[0].tags.a',
    ],
    [
      'long tag key',
      { source: 's', metrics: [{ name: 'a', value: 1, tags: { ['k'.repeat(17)]: 'x' } }] },
      'metrics[0].tags',
    ],
    ['tag value number', { source: 's', metrics: [{ name: 'a', value: 1, tags: { a: 1 } }] }, 'metrics[0].tags.a'],
    ['empty tag value', { source: 's', metrics: [{ name: 'a', value: 1, tags: { a: '' } }] }, 'metrics[0].tags.a'],
    ['NUL in a tag', { source: 's', metrics: [{ name: 'a', value: 1, tags: { a: 'x\u0000y' } }] }, 'metrics[0].tags.a'],
    [
      'lone surrogate',
      { source: 's', metrics: [{ name: 'a', value: 1, tags: { a: 'x\uD800' } }] },
      'metrics[0].tags.a',
    ],
    ['NUL in a source', { source: 'a\u0000b', metrics: [{ name: 'a', value: 1 }] }, 'source'],
    ['tags as array', { source: 's', metrics: [{ name: 'a', value: 1, tags: ['x'] }] }, 'metrics[0].tags'],
    [
      'constructor tag key',
      { source: 's', metrics: [{ name: 'a', value: 1, tags: JSON.parse('{"constructor":"x"}') }] },
      'metrics[0].tags',
    ],
    [
      '__proto__ tag key',
      { source: 's', metrics: [{ name: 'a', value: 1, tags: JSON.parse('{"__proto__":"x"}') }] },
      'metrics[0].tags',
    ],
    [
      'timestamp without zone',
      { source: 's', metrics: [{ name: 'a', value: 1, timestamp: '2024-01-15T10:00:00' }] },
      'metrics[0].timestamp',
    ],
    [
      'impossible date',
      { source: 's', metrics: [{ name: 'a', value: 1, timestamp: '2024-02-30T00:00:00Z' }] },
      'metrics[0].timestamp',
    ],
    [
      'timestamp in seconds',
      { source: 's', metrics: [{ name: 'a', value: 1, timestamp: 1_705_314_600 }] },
      'metrics[0].timestamp',
    ],
    ['timestamp 1e30', { source: 's', metrics: [{ name: 'a', value: 1, timestamp: 1e30 }] }, 'metrics[0].timestamp'],
    [
      'timestamp 10 years ahead',
      { source: 's', metrics: [{ name: 'a', value: 1, timestamp: NOW + 10 * 365 * 86_400_000 }] },
      'metrics[0].timestamp',
    ],
    [
      'timestamp older than retention',
      { source: 's', metrics: [{ name: 'a', value: 1, timestamp: '2023-01-01T00:00:00Z' }] },
      'metrics[0].timestamp',
    ],
    ['timestamp negative', { source: 's', metrics: [{ name: 'a', value: 1, timestamp: -5 }] }, 'metrics[0].timestamp'],
    ['batch timestamp bad', { source: 's', timestamp: 'soon', metrics: [{ name: 'a', value: 1 }] }, 'timestamp'],
    ['unit not a string', { source: 's', metrics: [{ name: 'a', value: 1, unit: 5 }] }, 'metrics[0].unit'],
  ];
  for (const [what, body, field] of bad) {
    it(`rejects ${what}`, () => {
      const e = rejects(() => decodeSubmission(body, ctx()));
      assert.equal(e.status, 400);
      if (field) assert.equal(e.field, field, e.message);
    });
  }

  it('accepts edge values exactly', () => {
    const values = [-0, 5e-324, 1e296, -1e296]; // the largest magnitude stored is MAX_ABS_VALUE
    const b = decodeSubmission(
      { source: 's', metrics: values.map((value, i) => ({ name: 'edge', value, timestamp: NOW - i })) },
      ctx(),
    );
    assert.ok(Object.is(b.values[0], -0));
    assert.deepEqual([...b.values], values);
  });

  it('stores unicode names of sources and tags as given', () => {
    const b = decodeSubmission(
      {
        source: 'héllo 🚀',
        metrics: [{ name: 'a', value: 1, tags: { who: '\u202Eevil\u200D👩‍💻', nfc: 'é', nfd: 'e\u0301' } }],
      },
      ctx(),
    );
    assert.equal(b.series[0].source, 'héllo 🚀');
    assert.equal(b.series[0].tags.who, '\u202Eevil\u200D👩‍💻');
    assert.notEqual(b.series[0].tags.nfc, b.series[0].tags.nfd);
  });

  it('keeps SQL metacharacters in tags literally', () => {
    const b = decodeSubmission(
      { source: "o'brien", metrics: [{ name: 'a', value: 1, tags: { q: `'; DROP TABLE metrics;-- " \\ % _` } }] },
      ctx(),
    );
    assert.equal(b.series[0].tags.q, `'; DROP TABLE metrics;-- " \\ % _`);
  });

  it('refuses epoch seconds, microseconds and nanoseconds without a precision, with a hint, and converts each with one', () => {
    const sec = NOW / 1000;
    for (const [precision, n] of [
      ['s', sec],
      ['us', NOW * 1000],
      ['ns', NOW * 1e6],
    ] as const) {
      const e = rejects(() =>
        decodeSubmission({ source: 's', metrics: [{ name: 'a', value: 1, timestamp: n }] }, ctx()),
      );
      assert.equal(e.field, 'metrics[0].timestamp');
      assert.match(e.message, new RegExp(`precision=${precision}`));
      assert.equal(
        decodeSubmission({ source: 's', metrics: [{ name: 'a', value: 1, timestamp: n }] }, ctx({ precision }))
          .times[0],
        NOW,
      );
    }
    assert.equal(
      decodeSubmission({ source: 's', metrics: [{ name: 'a', value: 1, timestamp: NOW }] }, ctx()).times[0],
      NOW,
    );
  });

  it('refuses times outside the years 1 to 9999 also when retention is off (no crash in the writer)', () => {
    const keepForever = ctx({ limits: { ...ctx().limits, retentionDays: 0 } });
    const cases: Array<[unknown, DecodeContext]> = [
      [-1e20, { ...keepForever, precision: 's' }],
      [-9.3e18, { ...keepForever, precision: 'ms' }],
      ['0000-12-31T23:59:59Z', keepForever],
    ];
    for (const [timestamp, c] of cases) {
      const e = rejects(() => decodeSubmission({ source: 's', metrics: [{ name: 'a', value: 1, timestamp }] }, c));
      assert.equal(e.status, 400);
      assert.equal(e.field, 'metrics[0].timestamp', String(timestamp));
    }
    assert.equal(
      decodeSubmission(
        { source: 's', metrics: [{ name: 'a', value: 1, timestamp: '0001-01-01T00:00:00Z' }] },
        keepForever,
      ).length,
      1,
    );
  });

  it('converts an explicit precision', () => {
    const b = decodeSubmission(
      { source: 's', metrics: [{ name: 'a', value: 1, timestamp: 1_705_314_600 }] },
      ctx({ precision: 's' }),
    );
    assert.equal(b.times[0], 1_705_314_600_000);
  });

  it('answers 413 past the points limit', () => {
    const metrics = Array.from({ length: 101 }, () => ({ name: 'a', value: 1 }));
    assert.equal(rejects(() => decodeSubmission({ source: 's', metrics }, ctx())).status, 413);
  });

  it('lists several problems, at most 20', () => {
    const metrics = Array.from({ length: 50 }, () => ({ name: 'a', value: 'x' }));
    try {
      decodeSubmission({ source: 's', metrics }, ctx());
      assert.fail('accepted');
    } catch (e) {
      assert.equal(((e as ApiError).details!.errors as unknown[]).length, 20);
    }
  });

  it('rejects tag sets made of a valid and an invalid key in any order', () => {
    rejects(() =>
      decodeSubmission({ source: 's', metrics: [{ name: 'a', value: 1, tags: { ok: 'x', 'bad key': 'y' } }] }, ctx()),
    );
  });
});

describe('decodeBatches', () => {
  it('merges batches and names nested fields', () => {
    const b = decodeBatches(
      {
        batches: [
          { source: 'a', metrics: [{ name: 'x', value: 1 }] },
          { source: 'b', timestamp: '2024-01-15T10:00:00Z', metrics: [{ name: 'y', value: 2 }] },
        ],
      },
      ctx(),
    );
    assert.equal(b.length, 2);
    assert.deepEqual(
      b.series.map((s) => s.source),
      ['a', 'b'],
    );
    const e = rejects(() =>
      decodeBatches(
        {
          batches: [
            { source: 'a', metrics: [] },
            { source: 'b', metrics: [{ name: 'x', value: 'no' }] },
          ],
        },
        ctx(),
      ),
    );
    assert.equal(e.field, 'batches[1].metrics[0].value');
    assert.equal(rejects(() => decodeBatches({ batches: 'x' }, ctx())).field, 'batches');
  });
  it('counts points across batches for the limit', () => {
    const batch = { source: 's', metrics: Array.from({ length: 60 }, () => ({ name: 'a', value: 1 })) };
    assert.equal(rejects(() => decodeBatches({ batches: [batch, batch] }, ctx())).status, 413);
  });
});

describe('decodeAppMetrics', () => {
  it('uses the app id as source and profileId as a tag', () => {
    const b = decodeAppMetrics(
      'app1',
      { metrics: [{ name: 'cpu_usage', value: 75.5, timestamp: NOW, tags: { host: 'server1' }, profileId: 'p1' }] },
      ctx({ precision: 'ms' }),
    );
    assert.equal(b.series[0].source, 'app1');
    assert.deepEqual(b.series[0].tags, { host: 'server1', profileId: 'p1' });
  });
});
