/**
 * Robust building blocks shared by the detectors: medians, MAD, trailing baselines over blocks,
 * a scale floor for flat or quantised series, a seeded PRNG. Pure functions over typed arrays.
 */

/** MAD of normally distributed data times this estimates the standard deviation. */
export const MAD_TO_SIGMA = 1.4826;

/** Median of `a[from, to)`; reorders nothing (sorts a copy). NaN when empty. */
export function median(a: ArrayLike<number>, from = 0, to = a.length): number {
  const n = to - from;
  if (n <= 0) return NaN;
  const c = new Float64Array(n);
  for (let i = 0; i < n; i++) c[i] = a[from + i];
  c.sort();
  return n % 2 ? c[(n - 1) >> 1] : (c[n / 2 - 1] + c[n / 2]) / 2;
}

/** Median absolute deviation around `center` (unscaled). */
export function mad(a: ArrayLike<number>, center: number, from = 0, to = a.length): number {
  const n = to - from;
  if (n <= 0) return NaN;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.abs(a[from + i] - center);
  return median(d);
}

/**
 * The resolution of a series: the smallest positive gap between distinct values (on a sample), so a
 * series of whole numbers has 1. Used as a floor for the scale: a quantised series whose MAD is 0
 * must not turn every step of one unit into an anomaly.
 */
export function quantum(values: ArrayLike<number>, sample = 20_000): number {
  const n = values.length;
  const m = Math.min(n, sample);
  const s = new Float64Array(m);
  const stride = n / m;
  for (let i = 0; i < m; i++) s[i] = values[Math.floor(i * stride)];
  s.sort();
  let q = Infinity;
  for (let i = 1; i < m; i++) {
    const d = s[i] - s[i - 1];
    if (d > 0 && d < q) q = d;
  }
  return Number.isFinite(q) ? q : 0;
}

/** A scale that is never 0: MAD-based sigma, floored by the series' resolution and a relative epsilon. */
export function flooredScale(sigma: number, floor: number): number {
  return Number.isFinite(sigma) && sigma > floor ? sigma : floor;
}

/**
 * Global floor for a series' scale. A series whose values often leave its median by whole steps
 * (counts, quantised readings: MAD 0, but 1% or more of points off the median) is floored at its
 * step, so ordinary steps do not explode. A flat series with rare departures keeps a tiny floor
 * (1e-9 of its magnitude), so a single step out of a flat line still stands out.
 */
export function scaleFloor(values: ArrayLike<number>): number {
  const n = values.length;
  const stride = Math.max(1, Math.floor(n / 20_000));
  let mag = 0;
  for (let i = 0; i < n; i += stride) mag = Math.max(mag, Math.abs(values[i]));
  const tiny = Math.max(mag * 1e-9, 1e-12);
  const mid = median(values);
  let off = 0, m = 0;
  for (let i = 0; i < n; i += stride, m++) if (values[i] !== mid) off++;
  return off >= 0.01 * m ? Math.max(quantum(values), tiny) : tiny;
}

export interface Baseline {
  /** Per point: the expected value (trailing robust centre). */
  center: Float64Array;
  /** Per point: the robust sigma of the trailing window (unfloored; NaN where unknown). */
  sigma: Float64Array;
}

/**
 * A trailing robust baseline: for point i, the median and MAD-sigma of about `window` points before
 * it. Computed over blocks of window/8 points (the median of block medians, the median of block MADs
 * plus the spread of the block medians), so it costs O(n log b) instead of O(n · window), which keeps
 * a million points well under a second. Causal, so a level shift shows at its first point.
 */
export function trailingBaseline(values: ArrayLike<number>, window: number, blocksPerWindow = 8): Baseline {
  const n = values.length;
  const b = Math.max(1, Math.floor(window / blocksPerWindow));
  const nb = Math.ceil(n / b);
  const bMed = new Float64Array(nb);
  const bMad = new Float64Array(nb);
  for (let j = 0; j < nb; j++) {
    const from = j * b, to = Math.min(n, from + b);
    bMed[j] = median(values, from, to);
    bMad[j] = mad(values, bMed[j], from, to);
  }
  const center = new Float64Array(n);
  const sigma = new Float64Array(n);
  const k = blocksPerWindow;
  const tmpMed = new Float64Array(k), tmpMad = new Float64Array(k);
  let lastJ = -1, c = NaN, s = NaN;
  for (let i = 0; i < n; i++) {
    const j = Math.floor(i / b);
    if (j !== lastJ) {
      lastJ = j;
      // The k complete blocks before this one; at the start, whatever came before (or this block itself).
      const lo = Math.max(0, j - k), hi = j;
      if (hi > lo) {
        const m = hi - lo;
        for (let q = 0; q < m; q++) {
          tmpMed[q] = bMed[lo + q];
          tmpMad[q] = bMad[lo + q];
        }
        c = median(tmpMed.subarray(0, m));
        const within = median(tmpMad.subarray(0, m));
        const between = m > 1 ? mad(tmpMed.subarray(0, m), c) : 0;
        s = MAD_TO_SIGMA * Math.max(within, between);
      } else {
        c = NaN;
        s = NaN;
      }
    }
    center[i] = c;
    sigma[i] = s;
  }
  // The first block has no history: use the first full window looking forward (warm-up).
  if (nb > 0) {
    const to = Math.min(n, window);
    const c0 = median(values, 0, to);
    const s0 = MAD_TO_SIGMA * mad(values, c0, 0, to);
    for (let i = 0; i < Math.min(b, n); i++) {
      center[i] = c0;
      sigma[i] = s0;
    }
  }
  return { center, sigma };
}

/** Trailing mean and (population) standard deviation over exactly `window` points, from prefix sums. */
export function trailingMeanStd(values: ArrayLike<number>, window: number): { mean: Float64Array; std: Float64Array } {
  const n = values.length;
  const mean = new Float64Array(n), std = new Float64Array(n);
  // Shift by the first value: prefix sums of squares stay accurate for large offsets (epoch-like values).
  const shift = n ? values[0] : 0;
  const s1 = new Float64Array(n + 1), s2 = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const v = values[i] - shift;
    s1[i + 1] = s1[i] + v;
    s2[i + 1] = s2[i] + v * v;
  }
  const warm = Math.min(n, window);
  for (let i = 0; i < n; i++) {
    // Points before i (at least a full window once there is one; the warm-up looks at the first window).
    const lo = i >= warm ? i - window : 0;
    const hi = i >= warm ? i : warm;
    const m = hi - lo;
    const mu = (s1[hi] - s1[lo]) / m;
    mean[i] = mu + shift;
    std[i] = Math.sqrt(Math.max(0, (s2[hi] - s2[lo]) / m - mu * mu));
  }
  return { mean, std };
}

/** mulberry32: small, fast, seedable; one request gives one answer. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Median sampling step of a time axis (ms), robust to gaps and repeated timestamps. */
export function typicalStep(times: ArrayLike<number>): number {
  const n = times.length;
  if (n < 2) return 0;
  const m = Math.min(n - 1, 10_000);
  const d = new Float64Array(m);
  const stride = (n - 1) / m;
  for (let k = 0; k < m; k++) {
    const i = Math.floor(k * stride);
    d[k] = times[i + 1] - times[i];
  }
  return median(d);
}

/** Pearson correlation of x[i] and x[i - lag] (on at most ~50k pairs). */
export function autocorrelation(x: ArrayLike<number>, lag: number): number {
  const n = x.length;
  if (lag <= 0 || lag >= n - 2) return 0;
  const pairs = n - lag;
  const stride = Math.max(1, Math.floor(pairs / 50_000));
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, m = 0;
  for (let i = lag; i < n; i += stride) {
    const a = x[i], b = x[i - lag];
    sa += a; sb += b; saa += a * a; sbb += b * b; sab += a * b; m++;
  }
  const cov = sab / m - (sa / m) * (sb / m);
  const va = saa / m - (sa / m) ** 2, vb = sbb / m - (sb / m) ** 2;
  return va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : 0;
}
