import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { anomalousPoints } from '../../src/alerts/anomaly-detector.js';
import { decide, STALE_MS, summarize, Timing } from '../../src/alerts/evaluation.js';
import { parseRuleSpec } from '../../src/alerts/rule-spec.js';
import { prng } from '../support/fixtures.js';

const S = 1000;
const t60: Timing = { durationMs: 60 * S, recoveryMs: 60 * S, staleMs: STALE_MS };

/** Points every 10 s from `from`, holding where value > 90 (a threshold rule "greater_than 90"). */
const series = (from: number, values: number[]) =>
  values.map((value, i) => ({ time: from + i * 10 * S, value, holds: value > 90 }));
const at = (points: ReturnType<typeof series>, now: number, active: boolean, t = t60) =>
  decide(summarize(points, now, t), now, t, active);

describe('alert evaluation', () => {
  const rising = series(0, [50, 50, 50, 50, 50, 95, 95, 95, 95, 95, 95, 95, 95, 95]); // 95 from t = 50 s

  it('fires only when the condition held for the whole duration', () => {
    assert.deepEqual(at(rising, 50 * S, false), { action: 'none', pending: true });
    assert.deepEqual(at(rising, 109 * S, false), { action: 'none', pending: true });
    assert.deepEqual(at(rising, 110 * S, false), { action: 'fire', pending: false });
  });

  it('never fires on a single point, and never resolves on a single point', () => {
    const spike = series(0, [50, 50, 50, 99, 50, 50, 50, 50, 50, 50, 50, 50]);
    for (let now = 0; now <= 110 * S; now += 5 * S) assert.equal(at(spike, now, false).action, 'none', `at ${now}`);
    const dip = series(0, [95, 95, 95, 95, 95, 95, 95, 95, 10, 95, 95, 95, 95, 95]);
    for (let now = 80 * S; now <= 130 * S; now += 5 * S) assert.equal(at(dip, now, true).action, 'keep', `at ${now}`);
  });

  it('resolves once the condition did not hold for the whole recovery time', () => {
    const falling = series(0, [95, 95, 95, 95, 40, 40, 40, 40, 40, 40, 40, 40, 40]); // 40 from t = 40 s
    assert.equal(at(falling, 99 * S, true).action, 'keep');
    assert.deepEqual(at(falling, 100 * S, true), { action: 'resolve', pending: false, reason: 'cleared' });
  });

  it('with zero duration and recovery, follows the latest point', () => {
    const t0: Timing = { durationMs: 0, recoveryMs: 0, staleMs: STALE_MS };
    const s = series(0, [50, 95, 50]);
    assert.equal(at(s, 10 * S, false, t0).action, 'fire');
    assert.equal(at(s, 20 * S, true, t0).action, 'resolve');
  });

  it('treats a series silent for five minutes as no data: no firing, and its alert resolves', () => {
    const high = series(0, Array(10).fill(99)); // last point at 90 s
    assert.equal(at(high, 90 * S + STALE_MS - 1, true).action, 'keep');
    assert.deepEqual(at(high, 90 * S + STALE_MS, true), { action: 'resolve', pending: false, reason: 'no_data' });
    assert.equal(at(high, 90 * S + STALE_MS, false).action, 'none');
    assert.equal(at([], 1_000 * S, false).pending, false);
  });

  it('needs the point in force at the start of the duration to be fresh', () => {
    // One high point long ago and one now: the gap means nothing is known about most of the window.
    const sparse = [
      { time: 0, value: 99, holds: true },
      { time: 600 * S, value: 99, holds: true },
    ];
    assert.equal(at(sparse, 600 * S, false).action, 'none');
  });
});

describe('anomalous points for anomaly rules (src/anomalies detectors, each point against its trailing window)', () => {
  const S10 = 10_000;
  const make = (values: number[]) => ({
    times: Float64Array.from(values, (_, i) => i * S10),
    values: Float64Array.from(values),
  });
  const noise = (n: number, seed = 3) => {
    const rand = prng(seed);
    return Array.from({ length: n }, () => 100 + rand() * 4 - 2);
  };
  const flagged = (values: number[], q: Partial<Parameters<typeof anomalousPoints>[2]> = {}) => {
    const { times, values: v } = make(values);
    return anomalousPoints(times, v, {
      algorithm: 'mad',
      sensitivity: 0.5,
      direction: 'both',
      windowMs: 3_600_000,
      ...q,
    }).map((a) => a.timestamp / S10);
  };

  it('flag a clear outlier and none of the noise around it', () => {
    const values = noise(400);
    values[350] = 160;
    assert.deepEqual(flagged(values), [350]);
  });

  it('flag every point of a sustained shift, which is what lets an alert hold for a duration', () => {
    const values = [...noise(360), ...Array(30).fill(160)];
    assert.deepEqual(
      flagged(values),
      Array.from({ length: 30 }, (_, i) => 360 + i),
    );
  });

  it('respect the direction', () => {
    const values = noise(400);
    values[300] = 40;
    values[350] = 160;
    assert.deepEqual(flagged(values, { direction: 'above' }), [350]);
    assert.deepEqual(flagged(values, { direction: 'below' }), [300]);
  });

  it('flag nothing on a flat series and nothing on no points', () => {
    assert.deepEqual(flagged(Array(100).fill(5)), []);
    assert.deepEqual(flagged([]), []);
  });
});

describe('alert rule bodies', () => {
  const algorithms = ['auto', 'mad'];

  it('read the monitoring reference example', () => {
    const spec = parseRuleSpec(
      {
        name: 'high_memory_usage',
        type: 'threshold',
        metric: 'memory.usage_percent',
        condition: 'greater_than',
        threshold: 90,
        duration_seconds: 300,
        severity: 'warning',
        notify: { email: ['admin@example.com'], webhook: 'https://example.com/alerts' },
      },
      algorithms,
    );
    assert.deepEqual(
      {
        c: spec.condition,
        t: spec.threshold,
        d: spec.durationSeconds,
        r: spec.recoverySeconds,
        s: spec.severity,
        n: spec.notify,
      },
      {
        c: 'greater_than',
        t: 90,
        d: 300,
        r: 300,
        s: 'warning',
        n: { webhook: 'https://example.com/alerts', email: ['admin@example.com'] },
      },
    );
  });

  it('take condition aliases, severities by number, and anomaly defaults', () => {
    assert.equal(
      parseRuleSpec({ name: 'a', metric: 'm', condition: '<=', threshold: 1 }, algorithms).condition,
      'less_than_or_equal',
    );
    assert.equal(
      parseRuleSpec({ name: 'a', metric: 'm', condition: 'gt', threshold: 1, severity: 3 }, algorithms).severity,
      'critical',
    );
    const a = parseRuleSpec({ name: 'a', metric: 'm', type: 'anomaly' }, algorithms);
    assert.deepEqual(
      { alg: a.algorithm, s: a.sensitivity, w: a.windowSeconds, dir: a.direction, d: a.durationSeconds },
      { alg: 'auto', s: 0.5, w: 3600, dir: 'both', d: 60 },
    );
  });

  it('name every bad field at once', () => {
    try {
      parseRuleSpec(
        { name: '', metric: 'm', condition: 'gt', threshold: Infinity, severity: 'x', extra: 1 },
        algorithms,
      );
      assert.fail('accepted');
    } catch (err) {
      const fields = (err as { details: { errors: Array<{ field: string }> } }).details.errors
        .map((e) => e.field)
        .sort();
      assert.deepEqual(fields, ['extra', 'name', 'severity', 'threshold']);
    }
  });
});
