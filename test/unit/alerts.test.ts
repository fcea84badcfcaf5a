import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { robustScores, thresholdSigmas } from '../../src/alerts/anomaly-detector.js';
import { decide, STALE_MS, summarize, Timing } from '../../src/alerts/evaluation.js';
import { parseRuleSpec } from '../../src/alerts/rule-spec.js';
import { prng } from '../support/fixtures.js';

const S = 1000;
const t60: Timing = { durationMs: 60 * S, recoveryMs: 60 * S, staleMs: STALE_MS };

/** Points every 10 s from `from`, holding where value > 90 (a threshold rule "greater_than 90"). */
const series = (from: number, values: number[]) => values.map((value, i) => ({ time: from + i * 10 * S, value, holds: value > 90 }));
const at = (points: ReturnType<typeof series>, now: number, active: boolean, t = t60) => decide(summarize(points, now, t), now, t, active);

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
    const sparse = [{ time: 0, value: 99, holds: true }, { time: 600 * S, value: 99, holds: true }];
    assert.equal(at(sparse, 600 * S, false).action, 'none');
  });
});

describe('robust anomaly scores', () => {
  it('flag a clear outlier and none of the noise around it', () => {
    const rand = prng(3);
    const values = Array.from({ length: 200 }, () => 100 + rand() * 4 - 2);
    values[150] = 160;
    const { scores } = robustScores(values, 0.5, 'both');
    assert.deepEqual([...scores.keys()].filter((i) => scores[i] >= 1), [150]);
  });

  it('respect the direction and the sensitivity', () => {
    const values = Array.from({ length: 50 }, (_, i) => 10 + (i % 5) * 0.1);
    values[10] = 0;
    values[20] = 20;
    const flagged = (s: Float64Array) => [...s.keys()].filter((i) => s[i] >= 1);
    assert.deepEqual(flagged(robustScores(values, 0.5, 'above').scores), [20]);
    assert.deepEqual(flagged(robustScores(values, 0.5, 'below').scores), [10]);
    assert.equal(thresholdSigmas(1), 3);
    assert.equal(thresholdSigmas(0.5), 5);
  });

  it('do not divide by zero on a flat or quantised series, and say nothing about a short one', () => {
    const flat = Array(30).fill(5);
    assert.ok(robustScores(flat, 0.5, 'both').scores.every((s) => s === 0));
    const quantised = Array(30).fill(5);
    quantised[3] = 9;
    const s = robustScores(quantised, 0.5, 'both').scores;
    assert.ok(s[3] >= 1 && Number.isFinite(s[3]));
    assert.ok(robustScores([1, 2, 100], 1, 'both').scores.every((x) => x === 0));
  });
});

describe('alert rule bodies', () => {
  const algorithms = ['auto', 'mad'];

  it('read the monitoring reference example', () => {
    const spec = parseRuleSpec(
      { name: 'high_memory_usage', type: 'threshold', metric: 'memory.usage_percent', condition: 'greater_than', threshold: 90, duration_seconds: 300, severity: 'warning', notify: { email: ['admin@example.com'], webhook: 'https://example.com/alerts' } },
      algorithms,
    );
    assert.deepEqual(
      { c: spec.condition, t: spec.threshold, d: spec.durationSeconds, r: spec.recoverySeconds, s: spec.severity, n: spec.notify },
      { c: 'greater_than', t: 90, d: 300, r: 300, s: 'warning', n: { webhook: 'https://example.com/alerts', email: ['admin@example.com'] } },
    );
  });

  it('take condition aliases, severities by number, and anomaly defaults', () => {
    assert.equal(parseRuleSpec({ name: 'a', metric: 'm', condition: '<=', threshold: 1 }, algorithms).condition, 'less_than_or_equal');
    assert.equal(parseRuleSpec({ name: 'a', metric: 'm', condition: 'gt', threshold: 1, severity: 3 }, algorithms).severity, 'critical');
    const a = parseRuleSpec({ name: 'a', metric: 'm', type: 'anomaly' }, algorithms);
    assert.deepEqual({ alg: a.algorithm, s: a.sensitivity, w: a.windowSeconds, dir: a.direction, d: a.durationSeconds }, { alg: 'auto', s: 0.5, w: 3600, dir: 'both', d: 60 });
  });

  it('name every bad field at once', () => {
    try {
      parseRuleSpec({ name: '', metric: 'm', condition: 'gt', threshold: Infinity, severity: 'x', extra: 1 }, algorithms);
      assert.fail('accepted');
    } catch (err) {
      const fields = (err as { details: { errors: Array<{ field: string }> } }).details.errors.map((e) => e.field).sort();
      assert.deepEqual(fields, ['extra', 'name', 'severity', 'threshold']);
    }
  });
});
