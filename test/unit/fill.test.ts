import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fillBuckets } from '../../src/query/fill.js';

const rows = [
  { t: 10, v: 1 },
  { t: 40, v: 4 },
];

describe('fillBuckets over [0, 60) by 10', () => {
  it('none keeps only buckets with data', () => assert.deepEqual(fillBuckets(rows, 0, 60, 10, 'none'), rows));
  it('an empty range has no buckets, whatever the fill, also off a bucket edge', () => {
    for (const fill of ['none', 'null', 'zero', 'previous', 'linear'] as const)
      assert.deepEqual(fillBuckets(rows, 25, 25, 10, fill), [], fill);
  });
  it('null', () =>
    assert.deepEqual(
      fillBuckets(rows, 0, 60, 10, 'null').map((b) => b.v),
      [null, 1, null, null, 4, null],
    ));
  it('zero', () =>
    assert.deepEqual(
      fillBuckets(rows, 0, 60, 10, 'zero').map((b) => b.v),
      [0, 1, 0, 0, 4, 0],
    ));
  it('previous', () =>
    assert.deepEqual(
      fillBuckets(rows, 0, 60, 10, 'previous').map((b) => b.v),
      [null, 1, 1, 1, 4, 4],
    ));
  it('linear', () =>
    assert.deepEqual(
      fillBuckets(rows, 0, 60, 10, 'linear').map((b) => b.v),
      [null, 1, 2, 3, 4, null],
    ));
  it('labels buckets by their start, starting at the bucket holding from', () => {
    assert.deepEqual(
      fillBuckets([], 15, 40, 10, 'null').map((b) => b.t),
      [10, 20, 30],
    );
  });
});
