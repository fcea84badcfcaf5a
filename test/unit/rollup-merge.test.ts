import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeInvalidations } from '../../src/storage/rollups.js';

const DAY = 86_400_000;
const D = 20_000 * DAY;

describe('mergeInvalidations', () => {
  it('merges the late ranges of a day into one, with the union of their series', () => {
    const merged = mergeInvalidations(
      [
        { f: D + 1000, t: D + 5000, ids: [3, 1] },
        { f: D + 500, t: D + 2000, ids: [2] },
        { f: D + 9000, t: D + 9000, ids: [1] },
      ],
      D + 2 * DAY,
    );
    assert.deepEqual(merged, [{ from: D + 500, to: D + 9000.001, seriesIds: [1, 2, 3] }]);
  });

  it('splits a range over several days at midnight, in time order', () => {
    const merged = mergeInvalidations(
      [
        { f: D + DAY + 10, t: D + DAY + 20, ids: [7] },
        { f: D + DAY - 100, t: D + DAY + 5, ids: [5] },
      ],
      D + 3 * DAY,
    );
    assert.deepEqual(merged, [
      { from: D + DAY - 100, to: D + DAY, seriesIds: [5] },
      { from: D + DAY, to: D + DAY + 20.001, seriesIds: [5, 7] },
    ]);
  });

  it('cuts at the watermark and drops what lies above it', () => {
    const merged = mergeInvalidations(
      [
        { f: D + 100, t: D + DAY + 100, ids: [1] },
        { f: D + 2 * DAY, t: D + 2 * DAY + 10, ids: [2] },
      ],
      D + 1000,
    );
    assert.deepEqual(merged, [{ from: D + 100, to: D + 1000, seriesIds: [1] }]);
  });
});
