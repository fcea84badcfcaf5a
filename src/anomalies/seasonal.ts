import { bandSigmas, defaultWindow, Detection, DetectorParams, SeriesInput } from './detector.js';
import {
  autocorrelation,
  flooredScale,
  levelBaseline,
  localLevel,
  mad,
  MAD_TO_SIGMA,
  median,
  scaleFloor,
  trailingBaseline,
  typicalStep,
} from './robust.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

export interface Seasonality {
  periodMs: number;
  label: 'daily' | 'weekly';
  slots: number;
  autocorrelation: number;
}

/**
 * The season of a series, if it has one: daily when it spans at least three days with at least 24
 * points a day, weekly when it spans three weeks; whichever lag correlates more, and only if the
 * correlation reaches 0.3. Null for a series too short or without a cycle.
 */
export function detectSeasonality(series: SeriesInput): Seasonality | null {
  const { times, values } = series;
  const n = values.length;
  if (n < 50) return null;
  const step = typicalStep(times);
  const span = times[n - 1] - times[0];
  if (!(step > 0)) return null;
  let best: Seasonality | null = null;
  for (const [periodMs, label, minSpan] of [
    [DAY, 'daily', 3 * DAY],
    [WEEK, 'weekly', 3 * WEEK],
  ] as const) {
    const slots = Math.round(periodMs / step);
    if (span < minSpan || slots < 24 || slots > n / 3) continue;
    const r = autocorrelation(values, slots);
    if (r >= 0.3 && (!best || r > best.autocorrelation + 0.05)) best = { periodMs, label, slots, autocorrelation: r };
  }
  return best;
}

/** Seasons of history per slot: the median of the same time of day (or week) over the last few. */
const SEASONS_KEPT = { daily: 7, weekly: 4 } as const;
const MAX_SLOTS = { daily: 1440, weekly: 2016 } as const;

/**
 * Seasonal baseline: the expected value of a point is the median of the same slot (time of day, or
 * of week) over the previous seasons, plus the trailing level of what that leaves; the band is the
 * trailing robust spread of the residual. A series without a season (or too short for one) gets
 * the `mad` detector's baseline: the trailing median, or the local level of a smooth series
 * (`levelBaseline`); so do the points of the first seasons, before a slot has history.
 * `baseline_avg` is the expected value where there is a season (a day's mean says nothing about
 * this time of day), else as for `mad`.
 */
export function seasonalDetector(
  series: SeriesInput,
  params: DetectorParams,
  season = detectSeasonality(series),
): Detection {
  const { times, values } = series;
  const n = values.length;
  const step = typicalStep(times);
  const window = params.window ?? defaultWindow(n, step);
  const k = bandSigmas(params.sensitivity);
  const floor = scaleFloor(values);
  const plain = levelBaseline(values, window);
  const seasonal = new Float64Array(n);
  // Per point: the robust spread of its slot across seasons (NaN during the first season).
  const slotSigma = new Float64Array(n).fill(NaN);
  let warmup = 0;
  if (season) {
    const kept = SEASONS_KEPT[season.label];
    // Slots of at least one sampling step and at most MAX_SLOTS per season (1-minute slots of a
    // day, 5-minute slots of a week): finer slots would hold a point or two and cost memory.
    const slots = Math.min(season.slots, MAX_SLOTS[season.label]);
    const slotMs = season.periodMs / slots;
    // Per slot: a ring of the medians of that slot in the last `kept` seasons, and their spread.
    const history = new Float64Array(slots * kept);
    const count = new Int32Array(slots);
    const slotMad = new Float64Array(slots).fill(NaN);
    const reach = Math.max(1, Math.round(slots / 48)); // a point's spread: the median over ± 1/48 of the period
    const near = new Float64Array(2 * reach + 1);
    let i = 0;
    while (i < n) {
      // A cell: the points of one slot in one season (contiguous, the series is in time order).
      const cellOf = (t: number) => Math.floor(t / slotMs);
      const cell = cellOf(times[i]);
      let j = i + 1;
      while (j < n && cellOf(times[j]) === cell) j++;
      const slot = ((cell % slots) + slots) % slots;
      const c = count[slot];
      const have = Math.min(c, kept);
      let expected = NaN,
        spread = NaN;
      if (have >= 2) {
        expected = median(history, slot * kept, slot * kept + have);
        let m = 0;
        for (let q = -reach; q <= reach; q++) {
          const v = slotMad[(slot + q + slots) % slots];
          if (v === v) near[m++] = v;
        }
        spread = m ? MAD_TO_SIGMA * median(near, 0, m) : NaN;
      }
      for (let q = i; q < j; q++) {
        seasonal[q] = have >= 2 ? expected : plain.center[q];
        slotSigma[q] = spread;
      }
      if (have < 2) warmup = j;
      // This cell's median joins the ring; anomalous cells enter too, the median absorbs them.
      history[slot * kept + (c % kept)] = median(values, i, j);
      count[slot] = c + 1;
      const h = Math.min(c + 1, kept);
      if (h >= 2)
        slotMad[slot] = mad(history, median(history, slot * kept, slot * kept + h), slot * kept, slot * kept + h);
      i = j;
    }
  } else {
    seasonal.set(plain.center);
  }
  const residual = new Float64Array(n);
  for (let i = 0; i < n; i++) residual[i] = values[i] - seasonal[i];
  const level = season ? trailingBaseline(residual, window) : { center: new Float64Array(n), sigma: plain.sigma };
  // During the first seasons there is no seasonal history: only what stands out from the whole series counts.
  const mid = median(values);
  const overall = MAD_TO_SIGMA * mad(values, mid);
  const expected = new Float64Array(n),
    band = new Float64Array(n),
    score = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const warm = season !== null && i < warmup && Number.isNaN(slotSigma[i]);
    expected[i] = warm ? plain.center[i] : seasonal[i] + level.center[i];
    const sigma = warm ? Math.max(plain.sigma[i], overall) : Math.max(level.sigma[i], slotSigma[i] || 0);
    band[i] = k * flooredScale(sigma, floor);
    score[i] = Math.abs(values[i] - expected[i]) / band[i];
  }
  const baseline = season
    ? expected
    : plain.levelBlock === null
      ? undefined
      : localLevel(values, plain.levelBlock, 'mean');
  return {
    score,
    expected,
    band,
    baseline,
    used: {
      window,
      level_block: plain.levelBlock,
      band_sigmas: k,
      season: season
        ? { period: season.label, slots: season.slots, autocorrelation: round(season.autocorrelation) }
        : null,
    },
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
