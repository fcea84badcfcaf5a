import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateMeter } from '../../src/common/rate-meter.js';

describe('RateMeter', () => {
  it('averages whole seconds over its window and remembers the busiest second', () => {
    let now = 1_000_000;
    const m = new RateMeter(10, () => now);
    m.add(100);
    now += 400;
    m.add(50); // same second
    now += 1_000;
    m.add(30);
    assert.equal(m.peak, 150); // the first second is complete, the second is not
    now += 1_000;
    assert.equal(m.rate(), 18); // (150 + 30) / 10
    assert.equal(m.total, 180);
    now += 20_000;
    assert.equal(m.rate(), 0);
    assert.equal(m.peak, 150);
  });
});
