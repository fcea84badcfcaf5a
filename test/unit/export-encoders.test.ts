import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCopyBinary } from '../../src/storage/copy-binary.js';
import { PointBatchBuilder } from '../../src/storage/point-batch.js';
import { CopyBinaryDecoder } from '../../src/export/copy-decoder.js';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { columnNames, csvCell, encoderFor, neutralise, PARQUET_ROW_GROUP } from '../../src/export/encoders.js';
import { exportFileName } from '../../src/export/export-request.js';
import type { SeriesInfo } from '../../src/export/point-reader.js';
import { releasingStream } from '../../src/export/releasing-stream.js';
import { parsePercentiles } from '../../src/statistics/percentiles.js';
import { parseMinDeviation } from '../../src/anomalies/anomaly-request.js';

describe('CSV cells', () => {
  it('neutralises formula starts (= + - @ TAB CR) with a leading quote (OWASP CSV injection)', () => {
    for (const c of ['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx']) assert.equal(neutralise(c), `'${c}`);
    for (const c of ['a=1', 'host-1', '', '1']) assert.equal(neutralise(c), c);
  });
  it('quotes cells with commas, quotes and line breaks (RFC 4180)', () => {
    assert.equal(csvCell('plain'), 'plain');
    assert.equal(csvCell('a,b'), '"a,b"');
    assert.equal(csvCell('say "hi"'), '"say ""hi"""');
    assert.equal(csvCell('two\nlines'), '"two\nlines"');
  });
  it('names tag columns after the fixed ones, prefixing a key that collides', () => {
    assert.deepEqual(columnNames({ withMetric: false, tagKeys: ['host', 'value'] }), [
      'timestamp',
      'value',
      'source',
      'host',
      'tag_value',
    ]);
    assert.deepEqual(columnNames({ withMetric: true, tagKeys: [] }), ['timestamp', 'metric', 'value', 'source']);
  });
  it('never names two columns alike, when a prefixed name is itself a tag key', () => {
    for (const [withMetric, tagKeys, tail] of [
      [false, ['tag_value', 'value'], ['tag_value', 'tag_tag_value']],
      [false, ['tag_tag_value', 'tag_value', 'value'], ['tag_tag_value', 'tag_value', 'tag_tag_tag_value']],
      [
        true,
        ['metric', 'tag_metric', 'tag_source', 'source'],
        ['tag_tag_metric', 'tag_metric', 'tag_source', 'tag_tag_source'],
      ],
    ] as const) {
      const names = columnNames({ withMetric, tagKeys: [...tagKeys] });
      assert.deepEqual(names.slice(withMetric ? 4 : 3), tail);
      assert.equal(new Set(names).size, names.length, names.join());
    }
  });
  it('writes values as stored, -0 and the extremes included (CSV, JSON, NDJSON)', () => {
    const series = new Map<number, SeriesInfo>([[1, { id: 1, metric: 'm', source: 's', tags: {}, unit: null }]]);
    const values = [-0, 0, 5e-324, -1e296, 0.1 + 0.2];
    const cols = {
      seriesIds: new Int32Array(values.length).fill(1),
      times: Float64Array.from(values, (_, i) => Date.UTC(2024, 0, 15) + i),
      values: Float64Array.from(values),
      length: values.length,
    };
    const text = (format: 'csv' | 'json' | 'ndjson') => {
      const enc = encoderFor(format, { withMetric: false, tagKeys: [] });
      return Buffer.concat([enc.begin(), enc.encode(cols, series), enc.end()]).toString();
    };
    const csv = text('csv')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[1]));
    const json = (JSON.parse(text('json')) as Array<{ value: number }>).map((r) => r.value);
    const ndjson = text('ndjson')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { value: number }).value);
    for (const got of [csv, json, ndjson]) {
      assert.equal(got.length, values.length);
      got.forEach((v, i) => assert.ok(Object.is(v, values[i]), `${v} for ${values[i]}`));
    }
  });
  it('names the file as the reference does', () => {
    assert.equal(exportFileName({ metrics: ['cpu_usage'] }, 'csv'), 'cpu_usage_export.csv');
    assert.equal(exportFileName({ metrics: null }, 'json'), 'metrics_export.json');
  });
});

describe('binary COPY decoding', () => {
  it('reads back what the writer encodes, however the bytes are split', () => {
    const b = new PointBatchBuilder();
    const s = b.addSeries('m', 's', {}, null);
    const t0 = Date.UTC(2024, 0, 1);
    for (let i = 0; i < 50; i++) b.push(s, t0 + i * 1000 + (i % 3) * 0.001, i * 1.5 - 7);
    // The writer's format is (time, series_id, value); the reader selects (series_id, time, value): re-order for the test.
    const batch = b.build();
    const written = encodeCopyBinary([{ batch, ids: Int32Array.of(42) }]);
    const swapped = Buffer.from(written);
    for (let o = 19, i = 0; i < 50; i++, o += 34) {
      written.copy(swapped, o + 2, o + 14, o + 22); // series_id field first
      written.copy(swapped, o + 10, o + 2, o + 14); // then time
    }
    for (const size of [1, 7, 34, 1000]) {
      const d = new CopyBinaryDecoder();
      const times: number[] = [],
        values: number[] = [],
        ids: number[] = [];
      for (let o = 0; o < swapped.length; o += size) {
        const c = d.push(swapped.subarray(o, o + size));
        times.push(...c.times);
        values.push(...c.values);
        ids.push(...c.seriesIds);
      }
      assert.ok(d.complete, `chunks of ${size}`);
      assert.deepEqual(ids, new Array(50).fill(42));
      assert.deepEqual(values, Array.from(batch.values));
      times.forEach((t, i) => assert.ok(Math.abs(t - batch.times[i]) < 1e-6, `time ${i}`));
    }
  });
});

describe('request parsing', () => {
  it('percentiles: the reference four plus the ones asked for, each from 0 to 100', () => {
    assert.deepEqual(parsePercentiles(undefined), [50, 90, 95, 99]);
    assert.deepEqual(parsePercentiles('75,99.9'), [50, 75, 90, 95, 99, 99.9]);
    assert.deepEqual(parsePercentiles(['p25', '0', '100']), [0, 25, 50, 90, 95, 99, 100]);
    assert.throws(() => parsePercentiles('abc'), /percentiles/);
    assert.throws(() => parsePercentiles('100.5'), /percentiles/);
  });
  it('min_deviation: absolute numbers or percentages of the expected value', () => {
    assert.deepEqual(parseMinDeviation(5), { kind: 'absolute', value: 5 });
    assert.deepEqual(parseMinDeviation('12.5%'), { kind: 'relative', value: 0.125 });
    assert.throws(() => parseMinDeviation(-1), /min_deviation/);
    assert.throws(() => parseMinDeviation('x%'), /min_deviation/);
  });
});

describe('releasingStream (the slot of a streamed export)', () => {
  const tick = () => new Promise((r) => setTimeout(r, 10));
  /** A source that yields `n` chunks, waits `holdMs` before each, and records its clean-up and abort. */
  function source(n: number, opts: { holdMs?: number; failAt?: number } = {}) {
    const seen = { cleanedUp: false, aborted: false, started: false };
    const open = (signal: AbortSignal) =>
      (async function* () {
        seen.started = true;
        signal.addEventListener('abort', () => (seen.aborted = true));
        try {
          for (let i = 0; i < n; i++) {
            if (opts.holdMs) await new Promise((r) => setTimeout(r, opts.holdMs));
            if (i === opts.failAt) throw new Error('connection lost');
            yield Buffer.from(`chunk ${i}\n`);
          }
        } finally {
          seen.cleanedUp = true;
        }
      })();
    return { open, seen };
  }

  it('releases once, before the end reaches the reader, when read to the end', async () => {
    const { open, seen } = source(3);
    let released = 0;
    const body = releasingStream(open, () => released++);
    let text = '';
    for await (const c of body) text += c;
    assert.equal(released, 1, 'released by the time the reader sees the end');
    assert.equal(text, 'chunk 0\nchunk 1\nchunk 2\n');
    await tick();
    assert.equal(released, 1);
    assert.ok(seen.cleanedUp);
  });

  it('releases once when the source fails (a database error)', async () => {
    const { open, seen } = source(3, { failAt: 1 });
    let released = 0;
    const body = releasingStream(open, () => released++);
    await assert.rejects(async () => {
      for await (const _ of body);
    }, /connection lost/);
    await tick();
    assert.equal(released, 1);
    assert.ok(seen.cleanedUp);
  });

  it('releases once when destroyed before it was ever read (the client gone before the body started)', async () => {
    const { open, seen } = source(3);
    let released = 0;
    const body = releasingStream(open, () => released++);
    body.destroy();
    await tick();
    assert.equal(released, 1);
    assert.equal(seen.started, false);
  });

  it('aborts the source and releases once, after its clean-up, when destroyed mid-stream', async () => {
    const { open, seen } = source(1000, { holdMs: 5 });
    let released = 0;
    let cleanedUpFirst = false;
    const body = releasingStream(open, () => ((cleanedUpFirst = seen.cleanedUp), released++));
    await new Promise((r) => body.once('data', r));
    body.destroy();
    await new Promise((r) => body.once('close', r));
    assert.equal(released, 1);
    assert.ok(seen.aborted, 'the pending read is told to stop');
    assert.ok(cleanedUpFirst, 'released after the source gave its connection back');
    await tick();
    assert.equal(released, 1);
  });
});

describe('Parquet row groups', () => {
  const series = new Map<number, SeriesInfo>([
    [1, { id: 1, metric: 'm', source: 'a', tags: { host: 'h1' }, unit: null }],
    [2, { id: 2, metric: 'm', source: 'b', tags: {}, unit: null }],
  ]);
  const T = Date.UTC(2024, 0, 15);
  /** `rows` points fed to the encoder in chunks of `chunk`, as the COPY decoder hands them over. */
  async function roundTrip(rows: number, chunk: number) {
    const enc = encoderFor('parquet', { withMetric: false, tagKeys: ['host'] });
    const parts = [enc.begin()];
    for (let at = 0; at < rows; at += chunk) {
      const n = Math.min(chunk, rows - at);
      const cols = { seriesIds: new Int32Array(n), times: new Float64Array(n), values: new Float64Array(n), length: n };
      for (let i = 0; i < n; i++) {
        cols.seriesIds[i] = ((at + i) % 2) + 1;
        cols.times[i] = T + (at + i) * 10 + ((at + i) % 1000) / 1000; // microseconds too
        cols.values[i] = (at + i) * 0.5;
      }
      parts.push(enc.encode(cols, series));
    }
    parts.push(enc.end());
    const buf = Buffer.concat(parts);
    const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
    return {
      meta: parquetMetadata(file),
      rows: (await parquetReadObjects({ file, parsers: { timestampFromMicroseconds: (us: bigint) => us } })) as Array<
        Record<string, unknown>
      >,
    };
  }

  for (const [rows, groups] of [
    [PARQUET_ROW_GROUP, [PARQUET_ROW_GROUP]],
    [PARQUET_ROW_GROUP + 1, [PARQUET_ROW_GROUP, 1]],
  ] as const) {
    it(`reads back ${rows} rows (${groups.length} row group(s)) exactly, whatever the chunking`, async () => {
      for (const chunk of [rows, 4096, 33_333]) {
        const { meta, rows: got } = await roundTrip(rows, chunk);
        assert.deepEqual(
          meta.row_groups.map((g) => Number(g.num_rows)),
          groups,
          `chunks of ${chunk}`,
        );
        assert.equal(got.length, rows);
        for (const i of [0, 1, PARQUET_ROW_GROUP - 1, rows - 1]) {
          const r = got[i];
          assert.equal(r.timestamp, BigInt(T + i * 10) * 1000n + BigInt(i % 1000), `row ${i}: microseconds`);
          assert.equal(r.value, i * 0.5);
          assert.equal(r.source, i % 2 ? 'b' : 'a');
          assert.equal(r.host ?? null, i % 2 ? null : 'h1');
        }
        for (let i = 0; i < rows; i++) if (got[i].value !== i * 0.5) assert.fail(`row ${i}: ${got[i].value}`);
      }
    });
  }
});
