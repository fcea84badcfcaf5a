import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Point } from '@influxdata/influxdb-client';
import { ApiError } from '../../src/common/errors.js';
import { DecodeContext, MAX_ABS_VALUE } from '../../src/ingestion/decode.js';
import { LineProtocolPrecision, LineSeriesIndex, parseLineProtocol } from '../../src/ingestion/line-protocol.js';

const NOW = Date.UTC(2024, 0, 15, 10, 30);
const T = Date.UTC(2024, 0, 15, 10, 0); // 1705312800000
const ctx = (over: Partial<DecodeContext['limits']> = {}): DecodeContext => ({
  now: NOW,
  limits: {
    maxPoints: 100,
    maxTags: 4,
    maxNameLength: 50,
    maxTagKeyLength: 16,
    maxTagValueLength: 32,
    maxFutureMs: 600_000,
    retentionDays: 7,
    ...over,
  },
});

interface P {
  metric: string;
  source: string;
  tags: Record<string, string>;
  time: number;
  value: number;
}

function points(body: string, precision: LineProtocolPrecision = 'ns', c = ctx(), index?: LineSeriesIndex): P[] {
  const { batch: b } = parseLineProtocol(body, 'telegraf', precision, c, index);
  return Array.from({ length: b.length }, (_, i) => {
    const s = b.series[b.seriesIndex[i]];
    return { metric: s.metric, source: s.source, tags: { ...s.tags }, time: b.times[i], value: b.values[i] };
  });
}

/** The 400's first line and message, or fails if the body was accepted. */
function rejects(
  body: string,
  precision: LineProtocolPrecision = 'ns',
  c = ctx(),
): { status: number; line?: number; message: string; errors: Array<{ line: number; message: string; text: string }> } {
  try {
    parseLineProtocol(body, 'telegraf', precision, c);
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    return {
      status: e.getStatus(),
      line: e.details?.line as number | undefined,
      message: e.message,
      errors: (e.details?.errors ?? []) as never,
    };
  }
  assert.fail(`accepted: ${JSON.stringify(body)}`);
}

const ns = (ms: number) => `${ms}000000`;

describe('line protocol: mapping', () => {
  it('maps measurement and field to <measurement>_<field>, the field `value` to the measurement, tags to tags, the bucket to the source', () => {
    const ps = points(
      `cpu,host=a,cpu=cpu-total usage_user=12.5,usage_system=3 ${ns(T)}\nload,host=a value=0.7 ${ns(T)}\n`,
    );
    assert.deepEqual(ps, [
      { metric: 'cpu_usage_user', source: 'telegraf', tags: { cpu: 'cpu-total', host: 'a' }, time: T, value: 12.5 },
      { metric: 'cpu_usage_system', source: 'telegraf', tags: { cpu: 'cpu-total', host: 'a' }, time: T, value: 3 },
      { metric: 'load', source: 'telegraf', tags: { host: 'a' }, time: T, value: 0.7 },
    ]);
  });

  it('replaces characters outside Timescope names with _ and puts _ before a leading digit, as Telegraf does for Prometheus', () => {
    const ps = points(
      `disk\\ io,path=/var\\ log,dev\\ name=sda1 read\\ bytes=1,ops/s=2,ütil=3,ok:x=4 ${ns(T)}\n1m\\ load v=5 ${ns(T)}`,
    );
    assert.deepEqual(
      ps.map((p) => [p.metric, p.tags]),
      [
        ['disk_io_read_bytes', { dev_name: 'sda1', path: '/var log' }],
        ['disk_io_ops_s', { dev_name: 'sda1', path: '/var log' }],
        ['disk_io__til', { dev_name: 'sda1', path: '/var log' }],
        ['disk_io_ok:x', { dev_name: 'sda1', path: '/var log' }],
        ['_1m_load_v', {}],
      ],
    );
  });

  it('keeps tag values exactly as sent (Unicode, spaces, quotes), tags in any order are one series', () => {
    const ps = points(`m,a=1,b=x\\ y\\,z\\=w"é😀 v=1 ${ns(T)}\nm,b=x\\ y\\,z\\=w"é😀,a=1 v=2 ${ns(T + 1000)}`);
    assert.deepEqual(ps[0].tags, { a: '1', b: 'x y,z=w"é😀' });
    const { batch } = parseLineProtocol(
      `m,a=1,b=2 v=1 ${ns(T)}\nm,b=2,a=1 v=2 ${ns(T + 1000)}`,
      'telegraf',
      'ns',
      ctx(),
    );
    assert.equal(new Set(batch.series.map((s) => s.key)).size, 1);
  });
});

describe('line protocol: escaping', () => {
  it('unescapes measurement (, and space), tag keys, tag values and field keys (, = and space)', () => {
    const [p] = points(`we\\,ather\\ x,lo\\=c\\ a=us\\,mid\\=west\\ 1 te\\=mp\\,f=82 ${ns(T)}`);
    // Measurement `we,ather x` and field `te=mp,f` are mapped to names; the tag value is kept.
    assert.equal(p.metric, 'we_ather_x_te_mp_f');
    assert.deepEqual(p.tags, { lo_c_a: 'us,mid=west 1' });
  });

  it('reads backslashes as InfluxDB documents: \\\\ is one backslash, a backslash before anything else is itself', () => {
    // The table of InfluxDB's line protocol reference ("Escaping backslashes"), inside a tag value.
    const table: Array<[string, string]> = [
      ['\\', '\\'],
      ['\\\\', '\\'],
      ['\\\\\\', '\\\\'],
      ['\\\\\\\\', '\\\\'],
      ['\\\\\\\\\\', '\\\\\\'],
      ['\\\\\\\\\\\\', '\\\\\\'],
    ];
    for (const [raw, read] of table) assert.equal(points(`m,t=a${raw}b v=1 ${ns(T)}`)[0].tags.t, `a${read}b`, raw);
    assert.equal(points(`m,t=C:\\Program\\ Files v=1 ${ns(T)}`)[0].tags.t, 'C:\\Program Files');
    // An odd count before a space: the last backslash escapes it (`a\\\ b` is `a\` + space + `b`).
    assert.equal(points(`m,t=a\\\\\\ b v=1 ${ns(T)}`)[0].tags.t, 'a\\ b');
    assert.equal(points(`m\\\\,t=1 v=1 ${ns(T)}`)[0].metric, 'm__v');
  });

  it('checks string fields (escaped quotes and backslashes, commas, spaces and newlines inside) and skips them', () => {
    const body = `m,h=a s="a \\"quoted\\", text = \\\\ with\nnewline",v=1,t="" ${ns(T)}\nm,h=a v=2 ${ns(T + 1000)}`;
    const r = parseLineProtocol(body, 'telegraf', 'ns', ctx());
    assert.equal(r.skippedStringFields, 2);
    assert.deepEqual(Array.from(r.batch.values), [1, 2]);
    // The newline inside the string counts: the bad line below is line 4.
    assert.equal(rejects(`m s="x\ny" ${ns(T)}\nm v=1 ${ns(T)}\nm v=oops`).line, 4);
  });
});

describe('line protocol: field types', () => {
  const value = (v: string) => points(`m f=${v} ${ns(T)}`)[0].value;

  it('floats in every spelling Go parses, -0 kept', () => {
    const cases: Array<[string, number]> = [
      ['1', 1],
      ['1.0', 1],
      ['-1.2e+78', -1.2e78],
      ['1E5', 1e5],
      ['2.5e-3', 0.0025],
      ['.5', 0.5],
      ['5.', 5],
      ['0.1', 0.1],
      ['123456.789012345', 123456.789012345],
      ['1e296', 1e296],
      ['-9.99999999999999e295', -9.99999999999999e295],
      ['5e-324', 5e-324],
      ['0.30000000000000004', 0.30000000000000004],
      // Sixteen digits below 2^53, read without a string; at 2^53 and past it, through Number().
      ['53.27891234567891', 53.27891234567891],
      ['900719925474099.1', 900719925474099.1],
      ['9007199254740991', 9007199254740991],
      ['9007199254740993', 9007199254740992],
      ['0.000000000000000000000000012', 1.2e-26],
      // eslint-disable-next-line no-loss-of-precision -- the parser must round exactly as this literal does
      ['12345678901234567890', 12345678901234567890],
    ];
    for (const [text, v] of cases) assert.equal(value(text), v, text);
    assert.ok(Object.is(value('-0'), -0));
    assert.ok(Object.is(value('-0.0'), -0));
  });

  it('integers (i) in the int64 range, unsigned (u) in the uint64 range, beyond 2^53 as the nearest double', () => {
    assert.equal(value('12i'), 12);
    assert.equal(value('-12i'), -12);
    assert.ok(Object.is(value('-0i'), 0));
    // eslint-disable-next-line no-loss-of-precision -- int64 max read as the nearest double
    assert.equal(value('9223372036854775807i'), 9223372036854775807);
    assert.equal(value('-9223372036854775808i'), -9223372036854775808);
    assert.equal(value('9007199254740993i'), 9007199254740992);
    assert.equal(value('12u'), 12);
    // eslint-disable-next-line no-loss-of-precision -- uint64 max read as the nearest double
    assert.equal(value('18446744073709551615u'), 18446744073709551615);
    assert.equal(value('0000000000000000000012u'), 12);
    for (const bad of [
      '9223372036854775808i',
      '-9223372036854775809i',
      '18446744073709551616u',
      '-1u',
      '1.5i',
      'i',
      '-i',
      '1e3i',
      '0x10i',
    ]) {
      const r = rejects(`m f=${bad}`);
      assert.equal(r.status, 400, bad);
      assert.match(r.message, /^line 1: field "f": /, bad);
    }
  });

  it('booleans as 1 and 0, in all of InfluxDB spellings', () => {
    for (const t of ['t', 'T', 'true', 'True', 'TRUE']) assert.equal(value(t), 1, t);
    for (const f of ['f', 'F', 'false', 'False', 'FALSE']) assert.equal(value(f), 0, f);
    for (const bad of ['tRUE', 'yes', 'constructor', '__proto__']) assert.equal(rejects(`m f=${bad}`).status, 400, bad);
  });

  it('refuses NaN, infinities, overflow and malformed numbers', () => {
    for (const bad of [
      'NaN',
      'nan',
      'Inf',
      '-Inf',
      '+Inf',
      'Infinity',
      '1e309',
      '-1e309',
      '+1',
      '1.2.3',
      '1e',
      '1e+',
      '--1',
      '-',
      '.',
      '1_000',
      '0x10',
      '1,5',
    ]) {
      const r = rejects(`m f=${bad} ${ns(T)}`);
      assert.equal(r.status, 400, bad);
      assert.equal(r.line, 1, bad);
    }
    // Finite, but beyond what rollups can sum (decode.ts's MAX_ABS_VALUE); the limit itself is stored.
    for (const bad of ['1e297', '-1.7976931348623157e308'])
      assert.match(rejects(`m f=${bad} ${ns(T)}`).message, /beyond ±1e\+296/, bad);
    assert.equal(points(`m f=1e296 ${ns(T)}`, 'ns')[0].value, 1e296);
  });
});

describe('line protocol: timestamps', () => {
  const at = (ts: string, p: LineProtocolPrecision) => points(`m v=1 ${ts}`, p)[0].time;

  it('reads each precision to the same instant, microseconds kept and nanoseconds truncated', () => {
    assert.equal(at('1705312800123456789', 'ns'), 1705312800123.456);
    assert.equal(at('1705312800123456', 'us'), 1705312800123.456);
    assert.equal(at('1705312800123', 'ms'), 1705312800123);
    assert.equal(at('1705312800', 's'), T);
    assert.equal(at(String(T / 60_000), 'm'), T);
    assert.equal(at(String(T / 3_600_000), 'h'), T);
  });

  it('keeps microseconds exact through the ns path (every µs of a second)', () => {
    for (let us = 0; us < 1_000_000; us += 7919) {
      const t = at(`1705312800${String(us).padStart(6, '0')}999`, 'ns');
      assert.equal(Math.round((t - 1705312800000) * 1000), us);
    }
  });

  it('uses the time of receipt when a line has none, one time for the whole request', () => {
    const ps = points('m v=1\nm,h=a v=2\n');
    assert.deepEqual(
      ps.map((p) => p.time),
      [NOW, NOW],
    );
  });

  it('refuses times outside the window, with a hint when the precision looks wrong', () => {
    let r = rejects(`m v=1 ${ns(T)}`, 's');
    assert.equal(r.line, 1);
    assert.match(r.message, /in the future .*read with precision=s; it looks like epoch ns/);
    r = rejects(`m v=1 1705312800`, 'ns');
    assert.match(r.message, /older than the retention of 7 days.*it looks like epoch s/);
    assert.match(rejects(`m v=1 ${ns(NOW + 3_600_000)}`).message, /more than 600 s in the future/);
    assert.match(rejects('m v=1 9223372036854775808').message, /out of the range of an int64/);
    assert.match(rejects('m v=1 12a').message, /timestamp "12a" is not an integer/);
    assert.match(rejects('m v=1 1.5').message, /not an integer/);
  });

  it('accepts negative and old times when retention allows (1 ns before the epoch is the µs before it)', () => {
    const c = ctx({ retentionDays: 0 });
    assert.equal(points('m v=1 -1', 'ns', c)[0].time, -0.001);
    assert.equal(points('m v=1 -1000', 'ns', c)[0].time, -0.001);
    assert.equal(points('m v=1 -1001', 'ns', c)[0].time, -0.002);
    assert.equal(points('m v=1 0', 'ns', c)[0].time, 0);
  });
});

describe('line protocol: lines', () => {
  it('skips comments, blank and white lines; takes CRLF, leading and repeated white space, no final newline, a BOM', () => {
    const body = `\ufeff# a comment\r\n\r\n   \n\t# indented comment\n  m,h=a   v=1   ${ns(T)}  \r\nm,h=a v=2\t${ns(T + 1000)}\r\n\nm,h=a v=3 ${ns(T + 2000)}`;
    const r = parseLineProtocol(body, 'telegraf', 'ns', ctx());
    assert.equal(r.lines, 3);
    assert.deepEqual(Array.from(r.batch.values), [1, 2, 3]);
    assert.deepEqual(Array.from(r.batch.times), [T, T + 1000, T + 2000]);
  });

  it('an empty body is nothing to store', () => {
    assert.equal(parseLineProtocol('', 'b', 'ns', ctx()).batch.length, 0);
    assert.equal(parseLineProtocol('# only\n\n', 'b', 'ns', ctx()).batch.length, 0);
  });

  it('names every bad line (up to 20) with its number and text, and keeps nothing', () => {
    const good = `m,h=a v=1 ${ns(T)}`;
    const bad = [
      'm',
      'm,h=a',
      'm,h=a ',
      'm v',
      'm v=',
      'm =1',
      'm,h v=1',
      'm,=a v=1',
      'm,h= v=1',
      'm,h=a=b v=1',
      ',h=a v=1',
      'm v=1,',
      'm v=1,,w=2',
      'm v=1 123 456',
      'm v=1 abc',
      'm v="x"y',
      'm v=1\\',
      'm v="unterminated', // last: a quote opens a string that may span lines, up to the next quote
    ];
    const body = [good, ...bad.flatMap((l) => [l, good])].join('\n');
    const r = rejects(body);
    assert.equal(r.status, 400);
    assert.equal(r.line, 2);
    assert.match(r.message, /^line 2: .*\(and 17 more lines\): m$/);
    assert.deepEqual(
      r.errors.map((e) => e.line),
      bad.map((_, i) => 2 + 2 * i),
      JSON.stringify(r.errors, null, 1),
    );
    for (const e of r.errors) assert.ok(bad.includes(e.text), e.text);
    assert.equal(rejects(Array(30).fill('bad').join('\n')).errors.length, 20);
  });

  it('refuses what Timescope names cannot hold: reserved names, long names, too many or duplicate tags, NUL', () => {
    assert.match(rejects('__m v=1').message, /reserved/);
    assert.match(rejects('m,__t=1 v=1').message, /tag "__t".*reserved/);
    assert.match(rejects('m,constructor=1 v=1').message, /reserved/);
    assert.match(rejects('m,__proto__=1 v=1').message, /reserved/);
    assert.match(rejects(`m ${'f'.repeat(60)}=1`).message, /longer than 50 characters/);
    assert.match(rejects(`m,${'k'.repeat(17)}=1 v=1`).message, /longer than 16/);
    assert.match(rejects(`m,k=${'v'.repeat(33)} v=1`).message, /1 to 32 characters/);
    assert.match(rejects('m,a=1,b=2,c=3,d=4,e=5 v=1').message, /more than 4 tags \(INGEST_MAX_TAGS\)/);
    assert.match(rejects('m,a=1,a=2 v=1').message, /tag "a" is given twice/);
    assert.match(rejects('m,a\\ b=1,a_b=2 v=1').message, /given twice/);
    assert.match(rejects('m,k=a\u0000b v=1').message, /without NUL/);
  });

  it('refuses more than INGEST_MAX_POINTS_PER_REQUEST points with 413', () => {
    const body = Array.from({ length: 30 }, (_, i) => `m a=${i},b=${i},c=${i},d=${i} ${ns(T + i * 1000)}`).join('\n');
    assert.throws(
      () => parseLineProtocol(body, 'b', 'ns', ctx()),
      (e: ApiError) => e.getStatus() === 413 && /INGEST_MAX_POINTS_PER_REQUEST/.test(e.message),
    );
  });
});

describe('line protocol: bodies as bytes, read in pieces', () => {
  /** Points, or the error's status, message and lines: the same whatever the pieces. */
  const outcome = (body: string | Buffer, piece?: number) => {
    try {
      const r = parseLineProtocol(body, 'telegraf', 'ns', ctx(), new LineSeriesIndex(1000), piece);
      const b = r.batch;
      return {
        lines: r.lines,
        skipped: r.skippedStringFields,
        points: Array.from({ length: b.length }, (_, i) => [b.series[b.seriesIndex[i]].key, b.times[i], b.values[i]]),
      };
    } catch (e) {
      assert.ok(e instanceof ApiError, String(e));
      return { status: e.getStatus(), message: e.message, details: e.details };
    }
  };

  it('gives what the text gives, for any piece size: multi-byte characters, strings across lines, CRLF, BOM, errors', () => {
    const bodies = [
      `\ufeffcpu,host=é😀 v=1 ${ns(T)}\r\n# c\r\nmem,host=ü s="a\nb\n"c"",v=2 ${ns(T)}\nm v=3\n`,
      `m s="one\ntwo\nthree" ${ns(T)}\nm v=oops\nm,t=€ v=1 ${ns(T)}\nm s="never closed\nm v=1\n`,
      `m v=1 ${ns(T)}\n`.repeat(40) + `m,k=${'x'.repeat(40)} v=1 ${ns(T)}\nm v=bad`,
    ];
    for (const body of bodies) {
      const expected = outcome(body);
      for (const piece of [1, 2, 3, 5, 8, 13, 21, 64, 1_000_000])
        assert.deepEqual(outcome(Buffer.from(body), piece), expected, `${piece}: ${JSON.stringify(body)}`);
    }
    assert.deepEqual(
      (outcome(bodies[1]) as unknown as { details: { errors: Array<{ line: number }> } }).details.errors.map(
        (e) => e.line,
      ),
      [4, 6],
    );
  });
});

describe('line protocol: known series', () => {
  it('gives the same answer with a warm index, whatever the field order or the set of fields', () => {
    const index = new LineSeriesIndex(1000);
    const bodies = [
      `cpu,host=a user=1,system=2,idle=3 ${ns(T)}`,
      `cpu,host=a user=4,system=5,idle=6 ${ns(T + 1000)}`,
      `cpu,host=a idle=7,user=8 ${ns(T + 2000)}`,
      `cpu,host=a user=9,iowait=10,s="x",system=11 ${ns(T + 3000)}`,
      `cpu,host=a user\\ x=12 ${ns(T + 4000)}`,
    ];
    for (const body of bodies) {
      const warm = points(body, 'ns', ctx(), index);
      assert.deepEqual(warm, points(body), body);
    }
    // A known measurement does not make a bad field good, nor a known field a bad value.
    assert.match(rejects(`cpu,host=a ${'x'.repeat(60)}=1 ${ns(T)}`).message, /longer than 50/);
    assert.throws(
      () => parseLineProtocol(`cpu,host=a user=x ${ns(T)}`, 'telegraf', 'ns', ctx(), index),
      /field "user"/,
    );
  });

  it('stays within its capacity', () => {
    const index = new LineSeriesIndex(10);
    for (let i = 0; i < 50; i++) assert.equal(points(`m,h=${i} v=${i},w=1 ${ns(T)}`, 'ns', ctx(), index)[0].value, i);
  });
});

describe('line protocol: what the InfluxDB client writes', () => {
  // Names from characters that need escaping, Unicode and those Timescope replaces. '#' would
  // start a comment at the start of a line, and the client does not escape \ (or \n, \r, \t in
  // the way InfluxDB reads them), so those are left out.
  const chars = fc.constantFrom(...'abcxyzAZ019_-.: ,="\'é€😀/'.split(/(?:)/u));
  const text = (min: number, max: number) => fc.array(chars, { minLength: min, maxLength: max }).map((a) => a.join(''));
  const expectedName = (s: string, colon: boolean) => {
    const t = s.replace(colon ? /[^A-Za-z0-9_.:-]/gu : /[^A-Za-z0-9_.-]/gu, '_');
    return /^[A-Za-z_]/.test(t) ? t : `_${t}`;
  };
  const field = fc.oneof(
    fc.record({
      type: fc.constant('float' as const),
      v: fc.double({ noNaN: true, min: -MAX_ABS_VALUE, max: MAX_ABS_VALUE }),
    }),
    fc.record({ type: fc.constant('int' as const), v: fc.maxSafeInteger() }),
    fc.record({ type: fc.constant('uint' as const), v: fc.maxSafeNat() }),
    fc.record({ type: fc.constant('bool' as const), v: fc.boolean() }),
    fc.record({ type: fc.constant('string' as const), v: fc.string({ unit: 'grapheme', maxLength: 20 }) }),
  );
  const point = fc.record({
    measurement: text(1, 10).filter((m) => !m.startsWith('#') && !expectedName(m, true).startsWith('__')),
    tags: fc.dictionary(text(1, 8), text(1, 12), { maxKeys: 3 }),
    fields: fc.dictionary(text(1, 8), field, { minKeys: 1, maxKeys: 4 }),
    // Anywhere in the accepted window, to the nanosecond.
    ns: fc.bigInt({ min: BigInt(NOW - 6 * 86_400_000) * 1_000_000n, max: BigInt(NOW + 500_000) * 1_000_000n }),
  });

  it('round-trips points written with Point.toLineProtocol', () => {
    const limits = {
      maxPoints: 1000,
      maxTags: 8,
      maxNameLength: 100,
      maxTagKeyLength: 50,
      maxTagValueLength: 100,
      maxFutureMs: 600_000,
      retentionDays: 7,
    };
    fc.assert(
      fc.property(fc.array(point, { minLength: 1, maxLength: 6 }), (ps) => {
        const expected: P[] = [];
        const lines: string[] = [];
        for (const p of ps) {
          const tagKeys = Object.keys(p.tags).map((k) => expectedName(k, false));
          fc.pre(
            new Set(tagKeys).size === tagKeys.length &&
              tagKeys.every((k) => !k.startsWith('__') && k !== 'constructor' && k !== 'prototype'),
          );
          const names = Object.keys(p.fields).map((f) =>
            f === 'value'
              ? expectedName(p.measurement, true)
              : `${expectedName(p.measurement, true)}_${f.replace(/[^A-Za-z0-9_.:-]/gu, '_')}`,
          );
          fc.pre(new Set(names).size === names.length && names.every((n) => !n.startsWith('__'))); // `é` + `a` is `__a`: reserved, a 400
          const pt = new Point(p.measurement).timestamp(String(p.ns));
          const tags: Record<string, string> = {};
          for (const [k, v] of Object.entries(p.tags)) {
            pt.tag(k, v);
            tags[expectedName(k, false)] = v;
          }
          const time = Number(p.ns / 1000n) / 1000;
          for (const [k, f] of Object.entries(p.fields)) {
            const metric = names[Object.keys(p.fields).indexOf(k)];
            if (f.type === 'float') pt.floatField(k, f.v);
            else if (f.type === 'int') pt.intField(k, f.v);
            else if (f.type === 'uint') pt.uintField(k, f.v);
            else if (f.type === 'bool') pt.booleanField(k, f.v);
            else pt.stringField(k, f.v);
            if (f.type !== 'string')
              expected.push({
                metric,
                source: 'bucket-1',
                tags,
                time,
                value: f.type === 'bool' ? Number(f.v) : f.v === 0 ? 0 : f.v,
              });
          }
          lines.push(pt.toLineProtocol()!);
        }
        const text = lines.join('\n');
        const { batch: b } = parseLineProtocol(text, 'bucket-1', 'ns', { now: NOW, limits });
        // The same body as bytes, read in small pieces, gives the same batch.
        const bytes = parseLineProtocol(
          Buffer.from(text),
          'bucket-1',
          'ns',
          { now: NOW, limits },
          undefined,
          1 + (text.length % 97),
        ).batch;
        assert.deepEqual(
          [Array.from(bytes.values), Array.from(bytes.times), bytes.series.map((x) => x.key)],
          [Array.from(b.values), Array.from(b.times), b.series.map((x) => x.key)],
        );
        const got: P[] = Array.from({ length: b.length }, (_, i) => {
          const s = b.series[b.seriesIndex[i]];
          return {
            metric: s.metric,
            source: s.source,
            tags: { ...s.tags },
            time: b.times[i],
            value: b.values[i] === 0 ? 0 : b.values[i],
          };
        });
        const sortKey = (x: P) => JSON.stringify([x.metric, x.tags, x.time, x.value]);
        const order = (x: P[]) =>
          [...x].sort((a, c) => (sortKey(a) < sortKey(c) ? -1 : sortKey(a) > sortKey(c) ? 1 : 0));
        assert.deepEqual(order(got), order(expected), lines.join('\n'));
      }),
      { numRuns: 300 },
    );
  });

  it('answers any text with points or a 4xx, never another error', () => {
    const limits = {
      maxPoints: 50,
      maxTags: 4,
      maxNameLength: 50,
      maxTagKeyLength: 16,
      maxTagValueLength: 32,
      maxFutureMs: 600_000,
      retentionDays: 0,
    };
    const lp = fc
      .array(
        fc.constantFrom('m', ',', '=', ' ', '\\', '"', '\n', '\r', '#', '1', 'i', 'u', 't', '.', 'e', '-', 'é', 'x'),
        { maxLength: 60 },
      )
      .map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(lp, fc.string({ unit: 'binary', maxLength: 60 })), (body) => {
        try {
          parseLineProtocol(body, 'b', 'ns', { now: NOW, limits });
        } catch (e) {
          assert.ok(e instanceof ApiError && e.getStatus() >= 400 && e.getStatus() < 500, String(e));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
