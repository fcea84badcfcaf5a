import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadScripts } from '../../src/database/migrator.js';
import { copyBinaryLength, encodeCopyBinary } from '../../src/storage/copy-binary.js';
import { parsePartitionBound, parsePgTimestamp } from '../../src/storage/partitions.js';
import { CanonicalSeries, canonicalTags, PointBatchBuilder } from '../../src/storage/point-batch.js';
import { SeriesCache } from '../../src/storage/series-cache.js';

describe('SeriesCache', () => {
  it('never holds more than its capacity and keeps hot entries', () => {
    const c = new SeriesCache(100);
    const e = (id: number) => ({ id, unit: null, firstSeen: 0, lastSeen: 0 });
    c.set('hot', e(0));
    for (let i = 1; i <= 1000; i++) {
      c.set(`k${i}`, e(i));
      assert.ok(c.get('hot'));
      assert.ok(c.size <= 100);
    }
    assert.equal(c.get('k1'), undefined);
    assert.equal(c.get('k1000')?.id, 1000);
  });
});

describe('canonicalTags', () => {
  it('sorts keys', () => {
    assert.equal(canonicalTags({ b: '2', a: '1' }).tagsKey, '{"a":"1","b":"2"}');
    assert.equal(canonicalTags(undefined).tagsKey, '{}');
  });
});

describe('PointBatchBuilder with series kept across batches', () => {
  const series = (): CanonicalSeries => ({
    key: 'cpu\u0000bench\u0000{}',
    metric: 'cpu',
    source: 'bench',
    tags: {},
    tagsKey: '{}',
    refs: undefined,
  });

  it('shares one SeriesRef per unit between batches, and never changes one a batch holds', () => {
    const s = series();
    const a = new PointBatchBuilder();
    a.setUnit(a.addCanonical(s), 'ms');
    const first = a.build();
    const b = new PointBatchBuilder();
    b.addCanonical(s); // no unit given in this batch
    const second = b.build();
    const c = new PointBatchBuilder();
    c.setUnit(c.addCanonical(s), 's');
    const third = c.build();
    const d = new PointBatchBuilder();
    d.setUnit(d.addCanonical(s), 's');
    const fourth = d.build();
    assert.equal(first.series[0].unit, 'ms', 'a later batch with another unit leaves this one as it was');
    assert.equal(second.series[0].unit, null);
    assert.equal(third.series[0].unit, 's');
    assert.equal(fourth.series[0], third.series[0], 'the same unit again: the same object');
    const e = new PointBatchBuilder();
    e.addCanonical(s);
    assert.equal(e.build().series[0], second.series[0]);
  });

  it('changes only its own SeriesRef when a series made by addSeries gets a unit', () => {
    const a = new PointBatchBuilder();
    const i = a.addSeries('cpu', 'bench', { host: 'a' }, null);
    assert.equal(a.addSeries('cpu', 'bench', { host: 'a' }, 'ms'), i);
    assert.equal(a.build().series[0].unit, 'ms');
  });
});

describe('binary COPY encoding', () => {
  it('lays out header, rows and trailer', () => {
    const b = new PointBatchBuilder(1);
    const s = b.addSeries('m', 's', {}, null);
    b.push(s, Date.UTC(2000, 0, 1, 0, 0, 1), 1.5);
    b.push(s, Date.UTC(1999, 11, 31, 23, 59, 59) + 0.001, -2); // before the PostgreSQL epoch, 1 µs fraction
    const buf = encodeCopyBinary([{ batch: b.build(), ids: Int32Array.of(42) }]);
    assert.equal(buf.length, copyBinaryLength(2));
    assert.equal(buf.subarray(0, 11).toString('latin1'), 'PGCOPY\n\xff\r\n\0');
    const row = 19;
    assert.equal(buf.readInt16BE(row), 3);
    assert.equal(buf.readBigInt64BE(row + 6), 1_000_000n);
    assert.equal(buf.readInt32BE(row + 18), 42);
    assert.equal(buf.readDoubleBE(row + 26), 1.5);
    assert.equal(buf.readBigInt64BE(row + 34 + 6), -999_999n);
    assert.equal(buf.readInt16BE(buf.length - 2), -1);
  });

  it("groups each part by series, by ascending id, keeping each series' order", () => {
    const rowsOf = (buf: Buffer) => {
      const out: Array<[number, number, number]> = [];
      for (let o = 19; o < buf.length - 2; o += 34)
        out.push([Number(buf.readBigInt64BE(o + 6)), buf.readInt32BE(o + 18), buf.readDoubleBE(o + 26)]);
      return out;
    };
    const part = (points: Array<[string, number, number]>, ids: Record<string, number>) => {
      const b = new PointBatchBuilder(points.length);
      const idx = new Map<string, number>();
      const seriesIds: number[] = [];
      for (const [name, t, v] of points) {
        let s = idx.get(name);
        if (s === undefined) {
          idx.set(name, (s = b.addSeries(name, 's', {}, null)));
          seriesIds[s] = ids[name];
        }
        b.push(s, Date.UTC(2000, 0, 1) + t, v);
      }
      return { batch: b.build(), ids: Int32Array.from(seriesIds) };
    };
    const ids = { a: 7, b: 3, c: 5 };
    // Two points of b at the same time: the later (value 4) must stay later.
    const first = part(
      [
        ['a', 1, 1],
        ['b', 1, 2],
        ['c', 1, 3],
        ['b', 1, 4],
        ['a', 0, 5],
        ['c', 2, 6],
      ],
      ids,
    );
    const second = part(
      [
        ['c', 9, 7],
        ['b', 9, 8],
      ],
      ids,
    );
    const sorted = rowsOf(encodeCopyBinary([first, second], undefined, true));
    assert.deepEqual(
      sorted.map(([us, id, v]) => [us / 1000, id, v]),
      [
        [1, 3, 2],
        [1, 3, 4],
        [1, 5, 3],
        [2, 5, 6],
        [1, 7, 1],
        [0, 7, 5],
        [9, 3, 8],
        [9, 5, 7],
      ],
    );
    // One id under two indexes (tags spelled in another order): one group, in arrival order.
    const spelled = part(
      [
        ['x', 1, 1],
        ['b', 1, 2],
        ['y', 1, 3],
        ['x', 1, 4],
      ],
      { x: 9, y: 9, b: 3 },
    );
    assert.deepEqual(
      rowsOf(encodeCopyBinary([spelled], undefined, true)).map(([, id, v]) => [id, v]),
      [
        [3, 2],
        [9, 1],
        [9, 3],
        [9, 4],
      ],
    );
    // Without it, arrival order; the same rows either way.
    const plain = rowsOf(encodeCopyBinary([first, second]));
    assert.deepEqual(
      plain.map((r) => r[2]),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(
      [...plain].sort((x, y) => x[2] - y[2]),
      [...sorted].sort((x, y) => x[2] - y[2]),
    );
  });
});

describe('partition bounds', () => {
  it('parses what PostgreSQL prints', () => {
    assert.equal(parsePgTimestamp('2026-11-22 00:00:00+00'), Date.UTC(2026, 10, 22));
    assert.equal(parsePgTimestamp('2026-11-22 01:00:00+01'), Date.UTC(2026, 10, 22));
    assert.deepEqual(parsePartitionBound("FOR VALUES FROM ('2026-11-22 00:00:00+00') TO ('2026-11-23 00:00:00+00')"), {
      from: Date.UTC(2026, 10, 22),
      to: Date.UTC(2026, 10, 23),
    });
  });
});

describe('migration files', () => {
  it('pick the common file or the flavour variant, in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mig-'));
    writeFileSync(join(dir, '0001_a.sql'), 'select 1');
    writeFileSync(join(dir, '0002_b.postgresql.sql'), 'select 2');
    writeFileSync(join(dir, '0002_b.timescaledb.sql'), '-- timescope:no-transaction\nselect 3');
    writeFileSync(join(dir, 'README.md'), 'ignored');
    assert.deepEqual(
      loadScripts(dir, 'postgresql').map((m) => [m.name, m.sql, m.transactional]),
      [
        ['0001_a', 'select 1', true],
        ['0002_b', 'select 2', true],
      ],
    );
    assert.equal(loadScripts(dir, 'timescaledb')[1].transactional, false);
  });
  it('refuse a migration with only one flavour', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mig-'));
    writeFileSync(join(dir, '0001_a.postgresql.sql'), 'select 1');
    assert.throws(() => loadScripts(dir, 'postgresql'), /variant is missing/);
  });
});
