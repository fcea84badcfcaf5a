import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import avro from 'avsc';
import fc from 'fast-check';
import snappy from 'snappyjs';
import { ApiError } from '../../src/common/errors.js';
import { decodeAvroMetrics, invalidText } from '../../src/ingestion/avro.js';
import type { DecodeContext } from '../../src/ingestion/decode.js';

const NOW = Date.UTC(2024, 0, 15, 10, 30);
const ctx = (over: Partial<DecodeContext['limits']> = {}): DecodeContext => ({
  now: NOW,
  precision: 'ms',
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

/** The schema as the reference prints it (metrics-collection-api-v2.md), copied here on purpose: the decoder must read what a producer with it writes. */
const REFERENCE_SCHEMA = {
  type: 'record',
  name: 'Metric',
  namespace: 'com.metrics.collection',
  fields: [
    { name: 'name', type: 'string', doc: 'Name of the metric' },
    { name: 'value', type: 'double', doc: 'Value of the metric' },
    { name: 'timestamp', type: 'long', doc: 'Unix timestamp in milliseconds' },
    { name: 'tags', type: { type: 'map', values: 'string' }, default: {}, doc: 'Additional metric tags' },
    { name: 'profileId', type: 'string', doc: 'Profile identifier' },
  ],
};
const Metric = avro.Type.forSchema(REFERENCE_SCHEMA as avro.Schema);
const Metrics = avro.Type.forSchema({ type: 'array', items: REFERENCE_SCHEMA } as avro.Schema);
const Batch = avro.Type.forSchema({
  type: 'record',
  name: 'MetricBatch',
  fields: [{ name: 'metrics', type: { type: 'array', items: REFERENCE_SCHEMA } }],
} as avro.Schema);

const metric = (i: number, over: Record<string, unknown> = {}) => ({
  name: 'cpu_usage',
  value: 70 + i,
  timestamp: NOW - i * 1000,
  tags: { host: 'server1' },
  profileId: 'profile123',
  ...over,
});

/** The Avro snappy codec: the block compressed, then the CRC-32 of the uncompressed bytes, big-endian (Avro specification). */
const snappyCodec = (buf: Buffer, cb: (err: Error | null, out?: Buffer) => void) => {
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(buf) >>> 0);
  cb(null, Buffer.concat([Buffer.from(snappy.compress(buf)), crc]));
};

/** An object container file written by avsc's own BlockEncoder. */
async function containerFile(
  schema: unknown,
  records: unknown[],
  opts: { codec?: string; blockSize?: number } = {},
): Promise<Buffer> {
  const encoder = new avro.streams.BlockEncoder(
    schema as avro.Schema,
    {
      codec: opts.codec ?? 'null',
      blockSize: opts.blockSize,
      codecs: { ...avro.streams.BlockEncoder.defaultCodecs(), snappy: snappyCodec },
    } as never,
  );
  const chunks: Buffer[] = [];
  encoder.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve, reject) => encoder.on('end', resolve).on('error', reject));
  for (const r of records) encoder.write(r);
  encoder.end();
  await done;
  return Buffer.concat(chunks);
}

function rejects(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    return e;
  }
  assert.fail('accepted');
}

const decode = (body: Buffer, c = ctx()) => decodeAvroMetrics('my-app', body, c, 1 << 20);

describe('Avro metrics decoder (metrics-collection-api-v2)', () => {
  it('reads an array of Metric records: the app id is the source, profileId a tag, ms timestamps', () => {
    const b = decode(Metrics.toBuffer([metric(0), metric(1, { tags: {}, profileId: 'p2' }), metric(2)]));
    assert.equal(b.length, 3);
    assert.deepEqual(
      b.series.map((s) => [s.metric, s.source, s.tags]),
      [
        ['cpu_usage', 'my-app', { host: 'server1', profileId: 'profile123' }],
        ['cpu_usage', 'my-app', { profileId: 'p2' }],
      ],
    );
    assert.deepEqual([...b.times], [NOW, NOW - 1000, NOW - 2000]);
    assert.deepEqual([...b.values], [70, 71, 72]);
  });

  it("reads the same bytes as a record {metrics: [...]} (the JSON body's shape), and one metric as an array of one", () => {
    const records = [metric(0), metric(1)];
    assert.deepEqual(Batch.toBuffer({ metrics: records }), Metrics.toBuffer(records));
    assert.equal(decode(Batch.toBuffer({ metrics: records })).length, 2);
    assert.equal(decode(Metrics.toBuffer([metric(5)])).values[0], 75);
    assert.equal(decode(Metrics.toBuffer([])).length, 0);
  });

  it('refuses at once a block that claims more items than the body has bytes (avsc loops over the count)', () => {
    const [long, string, double] = (['long', 'string', 'double'] as const).map((t) => avro.Type.forSchema(t));
    // 2^27: before the fix avsc looped over it for 2 s (2^40, for good); a count that fails, not hangs, the test.
    const huge = long.toBuffer(2 ** 27);
    const bodies = {
      // one Metric whose tags map claims 2^27 entries, then ends
      bare: Buffer.concat([long.toBuffer(1), string.toBuffer('cpu'), double.toBuffer(1), long.toBuffer(NOW), huge]),
      // a container file whose header metadata map claims 2^27 entries
      header: Buffer.concat([Buffer.from('Obj\x01', 'latin1'), huge]),
    };
    for (const [what, body] of Object.entries(bodies)) {
      const started = Date.now();
      const e = rejects(() => decode(body));
      assert.equal(e.getStatus(), 400, what);
      assert.match(e.message, /truncated/, what);
      assert.ok(Date.now() - started < 500, `${what}: ${Date.now() - started} ms`);
    }
  });

  it('refuses a tag key "__proto__" with 400 naming it, in both forms, as JSON bodies do (avsc dropped it)', async () => {
    const tags = JSON.parse('{"__proto__": "evil", "host": "h1"}') as Record<string, string>;
    assert.ok(Object.keys(tags).includes('__proto__'));
    const records = [metric(0), metric(1, { tags })];
    for (const body of [Metrics.toBuffer(records), await containerFile(REFERENCE_SCHEMA, records)]) {
      const e = rejects(() => decode(body));
      assert.equal(e.getStatus(), 400);
      assert.equal((e.body().details as { field: string }).field, 'metrics[1].tags.__proto__');
    }
  });

  it('refuses a bare single record (not an array) with 400 saying what is expected', () => {
    const e = rejects(() => decode(Metric.toBuffer(metric(0))));
    assert.equal(e.getStatus(), 400);
    assert.match(e.message, /array of Metric records|object container file/);
  });

  for (const codec of ['null', 'deflate', 'snappy']) {
    it(`reads an object container file (codec ${codec}), several blocks`, async () => {
      const records = Array.from({ length: 40 }, (_, i) => metric(i));
      const file = await containerFile(REFERENCE_SCHEMA, records, { codec, blockSize: 256 });
      const b = decode(file);
      assert.equal(b.length, 40);
      assert.deepEqual(
        [...b.values],
        records.map((r) => r.value),
      );
    });
  }

  it("resolves a producer's evolved schema (fields reordered, one added, tags left to its default, int value promoted)", async () => {
    const evolved = {
      type: 'record',
      name: 'Metric',
      namespace: 'com.metrics.collection',
      fields: [
        { name: 'profileId', type: 'string' },
        { name: 'timestamp', type: 'long' },
        { name: 'name', type: 'string' },
        { name: 'value', type: 'int' },
        { name: 'region', type: 'string', default: 'eu' },
      ],
    };
    const b = decode(
      await containerFile(evolved, [{ profileId: 'p', timestamp: NOW, name: 'requests', value: 12, region: 'us' }]),
    );
    assert.deepEqual([b.series[0].metric, b.series[0].tags, b.values[0]], ['requests', { profileId: 'p' }, 12]);
  });

  it("judges the text of each string in a record by its bytes, through the writer's schema: a U+FFFD sent does not let a bad byte beside it through", async () => {
    // The string to spoil is sent as a placeholder, whose first byte is then set to 0xFF.
    const spoil = (b: Buffer, mark: string) => {
      const at = b.indexOf(mark);
      assert.ok(at >= 0, mark);
      b[at] = 0xff;
      return b;
    };
    // One record: a valid U+FFFD in profileId, a bad byte in a tag value, then in a tag key.
    for (const [tags, mark] of [
      [{ host: 'BAD' }, 'BAD'],
      [{ BADKEY: 'x' }, 'BADKEY'],
    ] as const) {
      const body = spoil(Metrics.toBuffer([metric(0, { profileId: 'p\uFFFD', tags })]), mark);
      assert.equal(rejects(() => decode(body)).body().details?.field, 'metrics[0].tags');
    }
    // A producer's schema with a union, an array and a field Metric does not read: a bad byte in
    // that field is not judged, one in the name is, and a U+FFFD sent in profileId stays.
    const evolved = {
      type: 'record',
      name: 'Metric',
      namespace: 'com.metrics.collection',
      fields: [
        { name: 'notes', type: { type: 'array', items: ['null', 'string'] } },
        { name: 'name', type: 'string' },
        { name: 'value', type: 'double' },
        { name: 'timestamp', type: 'long' },
        { name: 'profileId', type: 'string' },
      ],
    };
    const record = (name: string) => ({
      notes: [null, 'IGNORED'],
      name,
      value: 1,
      timestamp: NOW,
      profileId: 'p\uFFFD',
    });
    const ignored = spoil(await containerFile(evolved, [record('cpu')]), 'IGNORED');
    assert.deepEqual(decode(ignored).series[0].tags, { profileId: 'p\uFFFD' });
    const judged = spoil(await containerFile(evolved, [record('cpu'), record('BADNAME')]), 'BADNAME');
    assert.equal(rejects(() => decode(judged)).body().details?.field, 'metrics[1].name');
  });

  it('finds a bad byte in any string of a record written with a schema of every Avro type, and only in the fields Metric reads (property)', () => {
    const Wide = avro.Type.forSchema(
      {
        type: 'record',
        name: 'Metric',
        fields: [
          { name: 'extra', type: ['null', 'string', { type: 'array', items: 'string' }] },
          { name: 'name', type: 'string' },
          { name: 'id', type: { type: 'fixed', name: 'Id', size: 3 } },
          { name: 'value', type: 'double' },
          { name: 'kind', type: { type: 'enum', name: 'Kind', symbols: ['A', 'B'] } },
          { name: 'timestamp', type: 'long' },
          { name: 'misc', type: { type: 'map', values: ['null', 'float', 'bytes', 'boolean', 'int', 'string'] } },
          { name: 'tags', type: { type: 'map', values: 'string' } },
          { name: 'profileId', type: 'string' },
          { name: 'inner', type: { type: 'record', name: 'Inner', fields: [{ name: 's', type: 'string' }] } },
        ],
      } as avro.Schema,
      { wrapUnions: true },
    );
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    // Unions are wrapped in avsc's values: {branch: value}.
    const misc = fc.oneof(
      fc.constant(null),
      fc.float({ noNaN: true }).map((float) => ({ float })),
      fc.uint8Array({ maxLength: 6 }).map((b) => ({ bytes: Buffer.from(b) })),
      fc.boolean().map((boolean) => ({ boolean })),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((int) => ({ int })),
      text.map((string) => ({ string })),
    );
    const record = fc.record({
      extra: fc.oneof(
        fc.constant(null),
        text.map((string) => ({ string })),
        fc.array(text, { maxLength: 3 }).map((array) => ({ array })),
      ),
      name: text,
      id: fc.uint8Array({ minLength: 3, maxLength: 3 }).map((b) => Buffer.from(b)),
      value: fc.double({ noNaN: true }),
      kind: fc.constantFrom('A', 'B'),
      timestamp: fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      misc: fc.dictionary(text, misc, { maxKeys: 3 }),
      tags: fc.dictionary(text, text, { maxKeys: 3 }),
      profileId: text,
      inner: fc.record({ s: text }),
    });
    // Where a marked string goes: its field, and whether Metric reads that field.
    const MARK = '\u0001\u0002MARK\u0002\u0001';
    const places: Array<[string, boolean, (r: Record<string, any>) => Record<string, any>]> = [
      ['name', true, (r) => ({ ...r, name: MARK })],
      ['tags', true, (r) => ({ ...r, tags: { ...r.tags, k: MARK } })],
      ['tags', true, (r) => ({ ...r, tags: { ...r.tags, [MARK]: 'v' } })],
      ['profileId', true, (r) => ({ ...r, profileId: MARK })],
      ['extra', false, (r) => ({ ...r, extra: { array: [MARK] } })],
      ['misc', false, (r) => ({ ...r, misc: { m: { string: MARK } } })],
      ['inner', false, (r) => ({ ...r, inner: { s: MARK } })],
    ];
    fc.assert(
      fc.property(record, fc.nat(places.length - 1), (r, i) => {
        assert.equal(invalidText(Wide, Wide.toBuffer(r)), undefined); // avsc writes valid UTF-8
        const [field, read, mark] = places[i];
        const bytes = Wide.toBuffer(mark(r));
        const at = bytes.indexOf(MARK);
        assert.ok(at >= 0 && bytes.indexOf(MARK, at + 1) < 0);
        bytes[at + 2] = 0xff; // the M: an invalid byte in the middle of the string
        assert.equal(invalidText(Wide, bytes), read ? field : undefined);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a file whose schema cannot be read as Metric', async () => {
    const other = {
      type: 'record',
      name: 'Metric',
      namespace: 'com.metrics.collection',
      fields: [
        { name: 'name', type: 'string' },
        { name: 'value', type: 'double' },
      ],
    };
    const e = rejects(() => decode(Buffer.alloc(0)));
    assert.match(e.message, /empty/);
    const f = await containerFile(other, [{ name: 'x', value: 1 }]);
    const r = rejects(() => decode(f));
    assert.equal(r.getStatus(), 400);
    assert.match(r.message, /cannot be read as the Metric schema/);
  });

  it("applies the JSON route's rules, naming the record: all or nothing", () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ value: NaN }, 'metrics[1].value', /finite/],
      [{ name: 'bad name' }, 'metrics[1].name', /must start with a letter/],
      [{ timestamp: NOW + 3_600_000 }, 'metrics[1].timestamp', /in the future/],
      [{ tags: { a: '1', b: '2', c: '3', d: '4' } }, 'metrics[1].tags', /more than 4 tags/], // profileId makes the fifth
      [{ tags: { __x: 'v' } }, 'metrics[1].tags', /reserved/],
    ];
    for (const [over, field, message] of cases) {
      const e = rejects(() => decode(Metrics.toBuffer([metric(0), metric(1, over)])));
      assert.equal(e.getStatus(), 400);
      assert.equal(e.details?.field, field, e.message);
      assert.match(e.message, message);
    }
  });

  it('answers 413 past INGEST_MAX_POINTS_PER_REQUEST, from the block counts, for arrays and files', async () => {
    const records = Array.from({ length: 101 }, (_, i) => metric(i % 50));
    assert.equal(rejects(() => decode(Metrics.toBuffer(records))).getStatus(), 413);
    const file = await containerFile(REFERENCE_SCHEMA, records);
    assert.equal(rejects(() => decode(file)).getStatus(), 413);
  });

  it('refuses truncated and trailing bytes, a wrong sync marker and a deflate bomb', async () => {
    const bytes = Metrics.toBuffer([metric(0), metric(1)]);
    assert.match(rejects(() => decode(bytes.subarray(0, bytes.length - 3))).message, /record 1 is truncated/);
    assert.match(
      rejects(() => decode(Buffer.concat([bytes, Buffer.from([1, 2])]))).message,
      /2 bytes follow the end of the array of 2 Metric records/,
    );
    const file = await containerFile(REFERENCE_SCHEMA, [metric(0)]);
    assert.match(rejects(() => decode(file.subarray(0, file.length - 5))).message, /block 0 is truncated/);
    const bad = Buffer.from(file);
    bad[bad.length - 1] ^= 0xff;
    assert.match(rejects(() => decode(bad)).message, /sync marker/);
    const bomb = await containerFile(
      REFERENCE_SCHEMA,
      Array.from({ length: 60 }, (_, i) => metric(i % 50, { name: `m${'x'.repeat(40)}` })),
      { codec: 'deflate', blockSize: 1 << 20 },
    );
    const e = rejects(() => decodeAvroMetrics('my-app', bomb, ctx(), 1000));
    assert.equal(e.getStatus(), 413);
    assert.match(e.message, /INGEST_MAX_BODY_BYTES/);
  });
});
