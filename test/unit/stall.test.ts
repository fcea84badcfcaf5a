import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StallClock } from '../../src/common/stall-clock.js';
import { writerState } from '../../src/system/health.service.js';

describe('StallClock', () => {
  it('fires once a client has been blocked for the whole limit, and any unblocked moment starts it afresh', () => {
    const c = new StallClock(1_000);
    assert.equal(c.blocked(true, 0), false);
    assert.equal(c.blocked(true, 999), false);
    assert.equal(c.blockedFor(999), 999);
    assert.equal(c.blocked(false, 1_000), false);
    assert.equal(c.blockedFor(1_000), 0);
    assert.equal(c.blocked(true, 1_500), false);
    assert.equal(c.blocked(true, 2_499), false);
    assert.equal(c.blocked(true, 2_500), true);
  });
});

describe('writer health', () => {
  const stallMs = 5_000,
    capacity = 1_000;
  it('is stalled when the oldest waiting write has waited the limit, whatever the queue', () => {
    assert.deepEqual(writerState(10, capacity, 5_000, stallMs), { status: 'stalled', level: 'degraded' });
    assert.deepEqual(writerState(950, capacity, 6_000, stallMs), { status: 'stalled', level: 'degraded' });
  });
  it('is saturated with a 90% full buffer that still moves, and running otherwise', () => {
    assert.deepEqual(writerState(900, capacity, 100, stallMs), { status: 'saturated', level: 'degraded' });
    assert.deepEqual(writerState(10, capacity, 4_999, stallMs), { status: 'running', level: 'healthy' });
    assert.deepEqual(writerState(0, capacity, 0, stallMs), { status: 'running', level: 'healthy' });
  });
});
