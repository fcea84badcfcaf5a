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
  let off = 0,
    m = 0;
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
 * Blocks of fewer points than this give medians and MADs too noisy to combine (a block of one
 * point has a MAD of 0): windows shorter than 8 such blocks get the exact trailing median and MAD.
 */
const MIN_BLOCK = 8;
/** Points at the start of a series that share one warm-up centre (the median of them all). */
const WARM_HEAD = 16;

/**
 * A trailing robust baseline: for point i, the median and MAD-sigma of about `window` points before
 * it. Computed over blocks of window/8 points (the median of block medians, the median of block MADs
 * plus the spread of the block medians), so it costs O(n log b) instead of O(n · window), which keeps
 * a million points well under a second; a window under 8 × MIN_BLOCK points is computed exactly.
 * Causal, so a level shift shows at its first point. Until a whole window precedes a point (the
 * warm-up), its scale is that of the first window, looking forward (a few points of history would
 * give a scale far too small, and ordinary noise would stand out), taken as the median of its
 * quarters' MADs so that a shift inside it does not inflate it; its centre is the median of the
 * points before it (of the first WARM_HEAD points for those), so a shift inside the first window
 * also shows at its start.
 */
export function trailingBaseline(values: ArrayLike<number>, window: number, blocksPerWindow = 8): Baseline {
  const n = values.length;
  const b = Math.floor(window / blocksPerWindow);
  const blocks = b >= MIN_BLOCK;
  const { center, sigma } = blocks ? blockBaseline(values, b, blocksPerWindow) : exactBaseline(values, window);
  const warm = Math.min(n, blocks ? b * blocksPerWindow : window);
  if (warm > 0) {
    const to = Math.min(n, window); // the first window (warm is never past it)
    // The scale: the median of the MADs of four quarters of the first window, so that a level
    // shift inside it (which inflates the MAD of the whole window) widens only one quarter's.
    const q = Math.max(1, Math.floor(to / 4));
    const mads: number[] = [];
    for (let from = 0; from + q <= to; from += q)
      mads.push(mad(values, median(values, from, from + q), from, from + q));
    const s0 = MAD_TO_SIGMA * (to >= 20 ? median(mads) : mad(values, median(values, 0, to), 0, to));
    sigma.fill(s0, 0, warm);
    // The centre is causal from WARM_HEAD points on: the median of the quarter window before the
    // point (recomputed every `step` points), so a level shift inside the first window shows at
    // its start instead of moving the centre of the points before it, and a trend is followed
    // (the median of every point before lagged it by half the warm-up); the first WARM_HEAD points
    // share theirs.
    const head = Math.min(warm, WARM_HEAD);
    center.fill(median(values, 0, head), 0, head);
    const span = Math.max(q, WARM_HEAD);
    const step = Math.max(1, Math.ceil(warm / 64));
    for (let i = head; i < warm; i += step)
      center.fill(median(values, Math.max(0, i - span), i), i, Math.min(warm, i + step));
  }
  return { center, sigma };
}

/** The trailing baseline over blocks of `b` points (see trailingBaseline); points before k whole blocks are left to the warm-up. */
function blockBaseline(values: ArrayLike<number>, b: number, k: number): Baseline {
  const n = values.length;
  const nb = Math.ceil(n / b);
  const bMed = new Float64Array(nb);
  const bMad = new Float64Array(nb);
  for (let j = 0; j < nb; j++) {
    const from = j * b,
      to = Math.min(n, from + b);
    bMed[j] = median(values, from, to);
    bMad[j] = mad(values, bMed[j], from, to);
  }
  const center = new Float64Array(n);
  const sigma = new Float64Array(n);
  const tmpMed = new Float64Array(k),
    tmpMad = new Float64Array(k);
  for (let j = k; j < nb; j++) {
    for (let q = 0; q < k; q++) {
      tmpMed[q] = bMed[j - k + q];
      tmpMad[q] = bMad[j - k + q];
    }
    const c = median(tmpMed);
    const s = MAD_TO_SIGMA * Math.max(median(tmpMad), mad(tmpMed, c));
    center.fill(c, j * b, Math.min(n, (j + 1) * b));
    sigma.fill(s, j * b, Math.min(n, (j + 1) * b));
  }
  return { center, sigma };
}

/** The exact median and MAD-sigma of the `window` points before each point (short windows only: O(n · window)). */
function exactBaseline(values: ArrayLike<number>, window: number): Baseline {
  const n = values.length;
  const w = Math.max(1, window);
  const center = new Float64Array(n);
  const sigma = new Float64Array(n);
  const scratch = new Float64Array(w);
  for (let i = w; i < n; i++) {
    for (let q = 0; q < w; q++) scratch[q] = values[i - w + q];
    const c = medianInPlace(scratch, w);
    for (let q = 0; q < w; q++) scratch[q] = Math.abs(values[i - w + q] - c);
    center[i] = c;
    sigma[i] = MAD_TO_SIGMA * medianInPlace(scratch, w);
  }
  return { center, sigma };
}

/** Trailing mean and (population) standard deviation over exactly `window` points, from prefix sums. */
export function trailingMeanStd(values: ArrayLike<number>, window: number): { mean: Float64Array; std: Float64Array } {
  const n = values.length;
  const mean = new Float64Array(n),
    std = new Float64Array(n);
  // Shift by the first value: prefix sums of squares stay accurate for large offsets (epoch-like values).
  const shift = n ? values[0] : 0;
  // And scale by a power of two where squares would overflow (values past about 1e150).
  let big = 0;
  for (let i = 0; i < n; i++) big = Math.max(big, Math.abs(values[i] - shift));
  const unit = big > 1e150 ? 2 ** Math.min(1023, Math.ceil(Math.log2(big))) : 1; // 2 ** 1024 is Infinity
  const s1 = new Float64Array(n + 1),
    s2 = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const v = (values[i] - shift) / unit;
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
    mean[i] = mu * unit + shift;
    std[i] = Math.sqrt(Math.max(0, (s2[hi] - s2[lo]) / m - mu * mu)) * unit;
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
  let sa = 0,
    sb = 0,
    saa = 0,
    sbb = 0,
    sab = 0,
    m = 0;
  for (let i = lag; i < n; i += stride) {
    const a = x[i],
      b = x[i - lag];
    sa += a;
    sb += b;
    saa += a * a;
    sbb += b * b;
    sab += a * b;
    m++;
  }
  const cov = sab / m - (sa / m) * (sb / m);
  const va = saa / m - (sa / m) ** 2,
    vb = sbb / m - (sb / m) ** 2;
  return va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : 0;
}

/** Medians (or means) of consecutive blocks of `b` points (the last block may be shorter). */
export function blockCentres(values: ArrayLike<number>, b: number, stat: 'median' | 'mean' = 'median'): Float64Array {
  const n = values.length;
  const nb = Math.ceil(n / b);
  const out = new Float64Array(nb);
  const scratch = new Float64Array(b);
  for (let j = 0; j < nb; j++) {
    const from = j * b,
      m = Math.min(n, from + b) - from;
    if (stat === 'mean') {
      let sum = 0;
      for (let q = 0; q < m; q++) sum += values[from + q];
      out[j] = sum / m;
      continue;
    }
    for (let q = 0; q < m; q++) scratch[q] = values[from + q];
    const c = scratch.subarray(0, m).sort();
    out[j] = m % 2 ? c[(m - 1) >> 1] : (c[m / 2 - 1] + c[m / 2]) / 2;
  }
  return out;
}

/** The minmod slope limiter: the smaller of two slopes when they agree in sign, else 0. */
export function minmod(a: number, b: number): number {
  return a > 0 && b > 0 ? Math.min(a, b) : a < 0 && b < 0 ? Math.max(a, b) : 0;
}

function median3(a: number, b: number, c: number): number {
  return a > b ? (b > c ? b : a > c ? c : a) : a > c ? a : b > c ? c : b;
}

/**
 * A causal local level over blocks of `b` points. For a point in block j: the medians of the three
 * complete blocks before it, each carried forward to the point along the local slope, and the
 * median of those three. The slope is the minmod of the two differences of consecutive block
 * medians: a smooth trend (both differences agree) is followed, a step (one difference) is not
 * extrapolated, noise (differences of either sign) gives no slope. A spike moves one block median
 * at most, and the median of three projections ignores one wild block. The first blocks have less
 * history: block 0 is its own median (warm-up), blocks 1 and 2 the previous block's median.
 * `stat: 'mean'` uses block means instead: the non-robust counterpart (the z-score's level, and
 * `baseline_avg`). O(n log b).
 */
export function localLevel(values: ArrayLike<number>, b: number, stat: 'median' | 'mean' = 'median'): Float64Array {
  const n = values.length;
  const m = blockCentres(values, b, stat);
  const out = new Float64Array(n);
  const half = (b - 1) / 2;
  for (let j = 0, i = 0; i < n; j++) {
    const end = Math.min(n, i + b);
    if (j < 3) {
      const c = m[j === 0 ? 0 : j - 1];
      for (; i < end; i++) out[i] = c;
      continue;
    }
    const m1 = m[j - 1],
      m2 = m[j - 2],
      m3 = m[j - 3];
    const slope = minmod(m2 - m3, m1 - m2) / b;
    for (; i < end; i++) {
      // Distance from the centre of block j-1 to point i; blocks j-2, j-3 are b and 2b further back.
      const d = i - ((j - 1) * b + half);
      out[i] = median3(m1 + slope * d, m2 + slope * (d + b), m3 + slope * (d + 2 * b));
    }
  }
  return out;
}

/** k-th smallest of a[0, m) by quickselect (Hoare partition, middle pivot); reorders a. */
function selectInPlace(a: Float64Array, m: number, k: number): number {
  let lo = 0,
    hi = m - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo,
      j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k];
}

/** Median of a[0, m) in O(m) expected time; reorders a (NaN-free input). */
export function medianInPlace(a: Float64Array, m: number): number {
  if (m <= 0) return NaN;
  const upper = selectInPlace(a, m, m >> 1);
  if (m % 2) return upper;
  let lower = -Infinity;
  for (let i = 0; i < m >> 1; i++) if (a[i] > lower) lower = a[i];
  return (lower + upper) / 2;
}

export interface LevelChoice {
  /** Block size (points) of the local level when it was chosen; null for the trailing median. */
  levelBlock: number | null;
  /** Robust sigma (MAD × 1.4826) of the prediction errors of the best local level (NaN: none fits), and of the trailing median. */
  localSigma: number;
  trailingSigma: number;
}

export interface LevelBaseline extends Baseline, LevelChoice {}

/** Block sizes (points) tried for the local level; a size is tried while three blocks fit in the window. */
export const LEVEL_BLOCKS = [3, 5, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256];

/**
 * A local level is chosen only when its prediction errors spread less than this share of the
 * trailing median's: the movement of the level then holds at least 1 - (1/3)^2 ≈ 89% of the
 * variance around the trailing median. A series that is mostly noise around a level (most
 * operational metrics) keeps the trailing median.
 */
export const LOCAL_LEVEL_MARGIN = 1 / 3;

/**
 * Where the candidates are compared: the whole series up to 32,768 points, else 8 evenly spaced
 * stretches of 4,096 points, so that choosing costs the same for a million points as for 32k.
 */
function stretches(n: number): Array<[number, number]> {
  const len = 4096,
    k = 8;
  if (n <= len * k) return [[0, n]];
  return Array.from({ length: k }, (_, q) => {
    const s = Math.floor((q * (n - len)) / (k - 1));
    return [s, s + len] as [number, number];
  });
}

/**
 * Which baseline predicts the series better: the trailing robust median of `window` points, or a
 * local level (`localLevel`) over blocks of 3 to window/3 points. Each candidate predicts every
 * point from the points before it only; the local level whose prediction errors have the smallest
 * robust spread is chosen if that spread is under LOCAL_LEVEL_MARGIN of the trailing median's.
 * A white-noise series gives both about the same spread (the trailing median stays); a smooth
 * curve (a daily shape, a sine of a few hours, a slow drift) gives the local level a small
 * fraction of it. Deterministic; errors are compared after the first window (or quarter) of each
 * stretch, so every candidate is judged on the same points.
 */
export function chooseLevel(values: Float64Array, window: number, margin = LOCAL_LEVEL_MARGIN): LevelChoice {
  const parts = stretches(values.length);
  const len = parts[0][1] - parts[0][0];
  const skip = Math.min(window, Math.floor(len / 4));
  const errors = new Float64Array(parts.length * Math.max(0, len - skip));
  const spread = (level: (part: Float64Array) => Float64Array): number => {
    let m = 0;
    for (const [s, e] of parts) {
      const part = values.subarray(s, e);
      const lv = level(part);
      for (let i = skip; i < part.length; i++) errors[m++] = part[i] - lv[i];
    }
    if (!m) return NaN;
    const c = medianInPlace(errors, m);
    for (let i = 0; i < m; i++) errors[i] = Math.abs(errors[i] - c);
    return MAD_TO_SIGMA * medianInPlace(errors, m);
  };
  const trailingSigma = spread((part) => trailingBaseline(part, window).center);
  let levelBlock: number | null = null;
  let localSigma = NaN;
  for (const b of LEVEL_BLOCKS) {
    if (3 * b > window || 4 * b > len) break;
    const sigma = spread((part) => localLevel(part, b));
    if (!(sigma >= localSigma)) {
      localSigma = sigma;
      levelBlock = b;
    }
  }
  return { levelBlock: localSigma < margin * trailingSigma ? levelBlock : null, localSigma, trailingSigma };
}

/**
 * The baseline a point is judged against (the `mad` detector's, and `seasonal`'s without a
 * season): the trailing robust median of about `window` points with its robust sigma
 * (`trailingBaseline`), or, where `chooseLevel` finds the series smooth at a shorter scale, the
 * local level with the trailing robust spread (over `window` points) of the prediction errors as
 * sigma: the noise around the level, not the swing of the series.
 */
export function levelBaseline(values: Float64Array, window: number): LevelBaseline {
  const choice = chooseLevel(values, window);
  if (choice.levelBlock === null) return { ...trailingBaseline(values, window), ...choice };
  const n = values.length;
  const center = localLevel(values, choice.levelBlock);
  const residual = new Float64Array(n);
  for (let i = 0; i < n; i++) residual[i] = values[i] - center[i];
  return { center, sigma: trailingBaseline(residual, window).sigma, ...choice };
}
