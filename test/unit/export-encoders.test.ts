import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeCopyBinary } from '../../src/storage/copy-binary.js';
import { PointBatchBuilder } from '../../src/storage/point-batch.js';
import { CopyBinaryDecoder } from '../../src/export/copy-decoder.js';
import { columnNames, csvCell, isoTimestamp, neutralise } from '../../src/export/encoders.js';
import { exportFileName } from '../../src/export/export-request.js';
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
    assert.deepEqual(columnNames({ withMetric: false, tagKeys: ['host', 'value'] }), ['timestamp', 'value', 'source', 'host', 'tag_value']);
    assert.deepEqual(columnNames({ withMetric: true, tagKeys: [] }), ['timestamp', 'metric', 'value', 'source']);
  });
  it('writes timestamps in ISO 8601 UTC, with microseconds only when present', () => {
    assert.equal(isoTimestamp(Date.UTC(2024, 0, 15, 10)), '2024-01-15T10:00:00.000Z');
    assert.equal(isoTimestamp(Date.UTC(2024, 0, 15, 10) + 1.25), '2024-01-15T10:00:00.001250Z');
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
      const times: number[] = [], values: number[] = [], ids: number[] = [];
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
