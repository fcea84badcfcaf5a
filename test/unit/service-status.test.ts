import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { availability, endpointPort } from '../../src/service-status/service-status.js';

const S = 1000;

describe('service availability from status changes', () => {
  it('counts up time over known time in the window', () => {
    const a = availability(
      [
        { time: 0, status: 'up' },
        { time: 60 * S, status: 'down' },
        { time: 90 * S, status: 'up' },
      ],
      0,
      120 * S,
    );
    assert.deepEqual(a, { up_seconds: 90, known_seconds: 120, ratio: 0.75 });
  });

  it('takes the state at the window start from the change before it', () => {
    const a = availability(
      [
        { time: -500 * S, status: 'down' },
        { time: 30 * S, status: 'up' },
      ],
      0,
      100 * S,
    );
    assert.deepEqual(a, { up_seconds: 70, known_seconds: 100, ratio: 0.7 });
  });

  it('does not count unknown time (silent past the TTL) nor time before the first report', () => {
    const a = availability(
      [
        { time: 20 * S, status: 'up' },
        { time: 50 * S, status: 'unknown' },
        { time: 80 * S, status: 'up' },
      ],
      0,
      100 * S,
    );
    assert.deepEqual(a, { up_seconds: 50, known_seconds: 50, ratio: 1 });
  });

  it('stops at removal and knows nothing without changes', () => {
    assert.deepEqual(
      availability(
        [
          { time: 0, status: 'up' },
          { time: 10 * S, status: 'removed' },
        ],
        0,
        100 * S,
      ),
      { up_seconds: 10, known_seconds: 10, ratio: 1 },
    );
    assert.deepEqual(availability([], 0, 100 * S), { up_seconds: 0, known_seconds: 0, ratio: null });
  });
});

describe('endpoint ports', () => {
  it('reads explicit and default ports, and gives up on what is no URL', () => {
    assert.equal(endpointPort('http://your-service:8080/health'), 8080);
    assert.equal(endpointPort('https://api.example.com'), 443);
    assert.equal(endpointPort('http://[::1]:9000'), 9000);
    assert.equal(endpointPort('http://your-service:port'), null);
    assert.equal(endpointPort('redis://cache'), null);
    assert.equal(endpointPort(null), null);
  });
});
