import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyseSeries, AnalysisOptions } from '../../src/anomalies/analyse.js';
import { ALGORITHMS, Algorithm } from '../../src/anomalies/detectors.js';
import { findEpisodes, severity } from '../../src/anomalies/episodes.js';
import { averagePathLength, IsolationForest } from '../../src/anomalies/isolation-forest.js';
import { detectSeasonality } from '../../src/anomalies/seasonal.js';
import { prng, trailingBaseline } from '../../src/anomalies/robust.js';

/** Scenario fixtures: a 5-minute series with Gaussian noise, then what each scenario does to it. */
const STEP = 300_000;
const T0 = Date.UTC(2024, 0, 1);

function gaussian(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

function series(n: number, f: (i: number, noise: number) => number, seed = 7) {
  const rnd = prng(seed);
  const times = new Float64Array(n), values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    times[i] = T0 + i * STEP;
    values[i] = f(i, gaussian(rnd));
  }
  return { times, values };
}

const daily = (i: number) => 50 + 20 * Math.sin((2 * Math.PI * i) / 288);
const opts = (algorithm: Algorithm, extra: Partial<AnalysisOptions> = {}): AnalysisOptions => ({ algorithm, sensitivity: 0.5, seed: 42, direction: 'both', ...extra });
const at = (s: { times: Float64Array }, i: number) => new Date(s.times[i]).toISOString();

describe('anomaly detectors on scenario fixtures', () => {
  const spike = series(3000, (i, e) => (i === 2000 ? 100 : 50 + e));
  const levelShift = series(3000, (i, e) => (i >= 2000 ? 70 : 50) + e);
  const seasonalDip = series(288 * 10, (i, e) => daily(i) + e - (i >= 288 * 8 + 100 && i < 288 * 8 + 124 ? 25 : 0));
  const noAnomaly = series(20_000, (_, e) => 50 + 5 * e);
  const flatThenSpike = series(2000, (i) => (i === 1500 ? 7 : 5));

  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: a spike is one anomaly at the spike, above the band`, () => {
      const a = analyseSeries(spike, opts(algorithm)).anomalies;
      const hit = a.find((x) => x.timestamp === at(spike, 2000));
      assert.ok(hit, `${algorithm}: ${JSON.stringify(a.map((x) => x.timestamp))}`);
      assert.equal(hit.value, 100);
      assert.ok(hit.score >= 1);
      assert.ok(hit.context.band_high < 100 && hit.context.expected > 45 && hit.context.expected < 55);
      assert.ok(a.length <= 3, `${algorithm}: ${a.length} anomalies`);
    });

    it(`${algorithm}: a series with no anomaly gets none or almost none`, () => {
      const a = analyseSeries(noAnomaly, opts(algorithm)).anomalies;
      assert.ok(a.length <= 2, `${algorithm}: ${a.length} anomalies in 20,000 points of noise`);
    });

    it(`${algorithm}: one request gives one answer`, () => {
      assert.deepEqual(analyseSeries(levelShift, opts(algorithm)), analyseSeries(levelShift, opts(algorithm)));
    });
  }

  it('isolation_forest: a flat line does not explode (a lone step may hide: trees grown on identical points cannot split)', () => {
    const a = analyseSeries(flatThenSpike, opts('isolation_forest')).anomalies;
    assert.ok(a.length <= 1 && a.every((x) => x.timestamp === at(flatThenSpike, 1500)));
  });

  for (const algorithm of ['auto', 'mad', 'seasonal', 'isolation_forest'] as const) {
    it(`${algorithm}: a level shift is reported once, at its start`, () => {
      const a = analyseSeries(levelShift, opts(algorithm)).anomalies;
      const hit = a.find((x) => Date.parse(x.timestamp) >= spike.times[2000] && Date.parse(x.timestamp) <= spike.times[2005]);
      assert.ok(hit, `${algorithm}: ${JSON.stringify(a.map((x) => x.timestamp))}`);
      assert.ok(a.filter((x) => Date.parse(x.timestamp) > spike.times[2005]).length <= 1, 'the shift is one episode');
      assert.ok(hit.episode.flagged_points > 1);
    });

    if (algorithm !== 'isolation_forest') {
      it(`${algorithm}: a flat line does not explode, and a step out of it is found`, () => {
        const a = analyseSeries(flatThenSpike, opts(algorithm)).anomalies;
        assert.deepEqual(a.map((x) => x.timestamp), [at(flatThenSpike, 1500)]);
        assert.ok(a[0].score <= 1000 && a[0].severity === 'critical', 'a step out of a flat line is critical, its score capped');
      });
    }
  }

  it('seasonal and auto: a dip at an unusual time of day is found, the daily cycle is not', () => {
    assert.equal(detectSeasonality(seasonalDip)?.label, 'daily');
    for (const algorithm of ['seasonal', 'auto'] as const) {
      const a = analyseSeries(seasonalDip, opts(algorithm)).anomalies;
      const dipStart = 288 * 8 + 100;
      assert.ok(a.some((x) => Date.parse(x.timestamp) >= seasonalDip.times[dipStart] && Date.parse(x.timestamp) < seasonalDip.times[dipStart + 24]), `${algorithm}: ${JSON.stringify(a.map((x) => x.timestamp))}`);
      assert.ok(a.length <= 2, `${algorithm}: ${a.length} anomalies`);
    }
  });

  it('a quantised series (whole numbers, MAD 0) does not flag its ordinary steps', () => {
    const q = series(5000, (_, e) => (Math.abs(e) > 1.7 ? 1 : 0));
    for (const algorithm of ALGORITHMS) assert.ok(analyseSeries(q, opts(algorithm)).anomalies.length <= 1, algorithm);
  });

  it('direction and min_deviation filter what is reported', () => {
    const s = series(3000, (i, e) => 50 + e + (i === 1000 ? 30 : i === 2000 ? -30 : 0));
    const both = analyseSeries(s, opts('mad')).anomalies.map((x) => x.timestamp);
    assert.deepEqual(both, [at(s, 1000), at(s, 2000)]);
    assert.deepEqual(analyseSeries(s, opts('mad', { direction: 'above' })).anomalies.map((x) => x.timestamp), [at(s, 1000)]);
    assert.deepEqual(analyseSeries(s, opts('mad', { direction: 'below' })).anomalies.map((x) => x.timestamp), [at(s, 2000)]);
    assert.deepEqual(analyseSeries(s, opts('mad', { minDeviation: { kind: 'absolute', value: 40 } })).anomalies, []);
    assert.equal(analyseSeries(s, opts('mad', { minDeviation: { kind: 'relative', value: 0.5 } })).anomalies.length, 2);
  });

  it('higher sensitivity finds at least as much', () => {
    const s = series(3000, (i, e) => 50 + e + (i % 500 === 0 ? 4 + i / 500 : 0));
    let last = -1;
    for (const sensitivity of [0.1, 0.5, 0.9, 1]) {
      const n = analyseSeries(s, opts('mad', { sensitivity })).anomalies.length;
      assert.ok(n >= last, `sensitivity ${sensitivity}: ${n} < ${last}`);
      last = n;
    }
  });
});

describe('isolation forest (Liu, Ting & Zhou 2008)', () => {
  it('c(n) is the average path length of an unsuccessful BST search', () => {
    assert.equal(averagePathLength(1), 0);
    assert.equal(averagePathLength(2), 1);
    // c(256) = 2 H(255) - 2 * 255 / 256, H(255) ≈ ln 255 + γ
    assert.ok(Math.abs(averagePathLength(256) - (2 * (Math.log(255) + 0.5772156649) - (2 * 255) / 256)) < 1e-9);
  });

  it('isolates an outlier early and scores ordinary points near or below 0.5', () => {
    const rnd = prng(1);
    const n = 5000;
    const data = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      data[2 * i] = gaussian(rnd);
      data[2 * i + 1] = gaussian(rnd);
    }
    data[0] = 8;
    data[1] = -8;
    const forest = IsolationForest.fit(data, 2, { trees: 100, subsample: 256, seed: 3 });
    const s = forest.score(data);
    assert.equal(forest.heightLimit, 8);
    assert.ok(s[0] > 0.75, `outlier ${s[0]}`);
    const sorted = Float64Array.from(s.subarray(1)).sort();
    assert.ok(sorted[Math.floor(n / 2)] < 0.5, `median ${sorted[Math.floor(n / 2)]}`);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const data = Float64Array.from({ length: 2000 }, (_, i) => Math.sin(i) * 10);
    const a = IsolationForest.fit(data, 1, { trees: 20, subsample: 256, seed: 9 }).score(data);
    const b = IsolationForest.fit(data, 1, { trees: 20, subsample: 256, seed: 9 }).score(data);
    const c = IsolationForest.fit(data, 1, { trees: 20, subsample: 256, seed: 10 }).score(data);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('uses each subsample point once per tree (psi capped at n)', () => {
    const data = Float64Array.from({ length: 100 }, (_, i) => i);
    const f = IsolationForest.fit(data, 1, { trees: 5, subsample: 1024, seed: 1 });
    assert.equal(f.psi, 100);
    assert.equal(f.heightLimit, 7);
  });
});

describe('episodes and severity', () => {
  it('merges flagged points closer than the gap into one episode reported at its start, with its peak', () => {
    const s = { times: Float64Array.from({ length: 20 }, (_, i) => i * 1000), values: new Float64Array(20) };
    const score = new Float64Array(20);
    for (const [i, v] of [[3, 1.2], [5, 2.5], [6, 1.1], [15, 1.6]] as const) score[i] = v;
    const det = { score, expected: new Float64Array(20), band: new Float64Array(20).fill(1), used: {} };
    s.values.set([0, 0, 0, 2, 0, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    const eps = findEpisodes(s, det, { direction: 'both', gap: 2, loneScore: 1.5 });
    assert.deepEqual(eps, [{ start: 3, peak: 5, end: 6, flagged: 3 }, { start: 15, peak: 15, end: 15, flagged: 1 }]);
    assert.deepEqual(findEpisodes(s, det, { direction: 'both', gap: 2, loneScore: 2 }).length, 1);
  });

  it('severity grows with the score', () => {
    assert.deepEqual([1, 1.6, 2.2, 3.5].map(severity), ['low', 'medium', 'high', 'critical']);
  });

  it('the trailing baseline is causal: a shift shows at its first point', () => {
    const v = Float64Array.from({ length: 400 }, (_, i) => (i >= 300 ? 10 : 0) + (i % 2) * 0.1);
    const b = trailingBaseline(v, 80);
    assert.ok(b.center[300] < 1);
  });
});
