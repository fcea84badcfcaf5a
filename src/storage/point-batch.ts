/**
 * The one internal shape of points on their way to storage. Every producer — JSON ingest in all
 * its shapes, the host collector, pipelines writing derived series — builds a PointBatch and hands
 * it to the PointWriter. Columnar typed arrays keep per-point cost and garbage low.
 */

/** A series as the writer sees it: its identity (metric, source, canonical tags) and its unit. */
export interface SeriesRef {
  /** `metric \0 source \0 tagsKey`: the cache key. NUL can never appear in a name or tag. */
  readonly key: string;
  readonly metric: string;
  readonly source: string;
  readonly tags: Readonly<Record<string, string>>;
  /** Canonical JSON of the tags, keys sorted: `{"host":"a","region":"eu"}`. */
  readonly tagsKey: string;
  /** Last unit given for this series in the batch, if any. */
  readonly unit: string | null;
}

/**
 * A series validated and canonicalised once and kept by a decoder's cache across requests. The
 * builder makes its SeriesRef once per unit (`refs`) rather than once per batch: a thousand
 * per-request objects per batch, still held by the next batch's time, were what V8 promoted and
 * then had to collect in full under a steady load (the ingest bench).
 */
export interface CanonicalSeries extends Omit<SeriesRef, 'unit'> {
  /** PointBatchBuilder's own: this series without a unit, and with the last unit it was given. */
  refs: { readonly plain: SeriesRef; unit: SeriesRef | undefined } | undefined;
}

const withUnit = (r: Omit<SeriesRef, 'unit'>, unit: string | null): SeriesRef => ({
  key: r.key,
  metric: r.metric,
  source: r.source,
  tags: r.tags,
  tagsKey: r.tagsKey,
  unit,
});

export interface PointBatch {
  /** Distinct series (the same key may appear twice when producers spelled its tags differently). */
  readonly series: readonly SeriesRef[];
  /** Per point: index into `series`. */
  readonly seriesIndex: Int32Array;
  /** Per point: epoch milliseconds (a fraction carries microseconds). */
  readonly times: Float64Array;
  readonly values: Float64Array;
  readonly length: number;
  readonly minTime: number;
  readonly maxTime: number;
  /** Per series (parallel to `series`): earliest and latest point time in this batch. */
  readonly seriesMinTime: Float64Array;
  readonly seriesMaxTime: Float64Array;
}

/** Canonical tags: keys sorted, as the JSON text stored in `series.tags_key`. Tags must already be valid. */
export function canonicalTags(tags: Readonly<Record<string, string>> | undefined): {
  tags: Record<string, string>;
  tagsKey: string;
} {
  if (!tags) return { tags: {}, tagsKey: '{}' };
  const keys = Object.keys(tags);
  if (keys.length === 0) return { tags: {}, tagsKey: '{}' };
  keys.sort();
  const sorted: Record<string, string> = {};
  for (const k of keys) sorted[k] = tags[k];
  return { tags: sorted, tagsKey: JSON.stringify(sorted) };
}

export const seriesKey = (metric: string, source: string, tagsKey: string) =>
  `${metric}\u0000${source}\u0000${tagsKey}`;

export class PointBatchBuilder {
  private readonly series: SeriesRef[] = [];
  /** Parallel to `series`: the decoder's series it came from (addCanonical), else undefined. */
  private readonly canonical: Array<CanonicalSeries | undefined> = [];
  private readonly byKey = new Map<string, number>();
  private seriesIndex: Int32Array;
  private times: Float64Array;
  private values: Float64Array;
  private sMin: number[] = [];
  private sMax: number[] = [];
  private n = 0;
  private minTime = Infinity;
  private maxTime = -Infinity;

  constructor(capacity = 64) {
    const c = Math.max(1, capacity);
    this.seriesIndex = new Int32Array(c);
    this.times = new Float64Array(c);
    this.values = new Float64Array(c);
  }

  get length(): number {
    return this.n;
  }

  /** Index of a series in this batch, adding it if new. `tags` must be valid; they are canonicalised here. */
  addSeries(
    metric: string,
    source: string,
    tags: Readonly<Record<string, string>> | undefined,
    unit: string | null,
  ): number {
    const c = canonicalTags(tags);
    const key = seriesKey(metric, source, c.tagsKey);
    let idx = this.byKey.get(key);
    if (idx === undefined) {
      idx = this.series.length;
      this.series.push({ key, metric, source, tags: c.tags, tagsKey: c.tagsKey, unit });
      this.canonical.push(undefined);
      this.byKey.set(key, idx);
      this.sMin.push(Infinity);
      this.sMax.push(-Infinity);
    } else if (unit !== null) {
      this.setUnit(idx, unit);
    }
    return idx;
  }

  /**
   * Adds a series already validated and canonicalised (its `key` computed) without looking it up:
   * the caller guarantees it is not yet in this batch. Used by the decoders' own caches; the
   * batch holds a SeriesRef shared with other batches of the same series (SeriesRefs are never
   * changed once made).
   */
  addCanonical(c: CanonicalSeries): number {
    const idx = this.series.length;
    this.series.push((c.refs ??= { plain: withUnit(c, null), unit: undefined }).plain);
    this.canonical.push(c);
    this.sMin.push(Infinity);
    this.sMax.push(-Infinity);
    return idx;
  }

  setUnit(seriesIdx: number, unit: string): void {
    const cur = this.series[seriesIdx];
    if (cur.unit === unit) return;
    const refs = this.canonical[seriesIdx]?.refs;
    if (refs === undefined) this.series[seriesIdx] = withUnit(cur, unit);
    else this.series[seriesIdx] = refs.unit?.unit === unit ? refs.unit : (refs.unit = withUnit(cur, unit));
  }

  push(seriesIdx: number, time: number, value: number): void {
    if (this.n === this.times.length) this.grow();
    const i = this.n++;
    this.seriesIndex[i] = seriesIdx;
    this.times[i] = time;
    this.values[i] = value;
    if (time < this.minTime) this.minTime = time;
    if (time > this.maxTime) this.maxTime = time;
    if (time < this.sMin[seriesIdx]) this.sMin[seriesIdx] = time;
    if (time > this.sMax[seriesIdx]) this.sMax[seriesIdx] = time;
  }

  build(): PointBatch {
    const n = this.n;
    return {
      series: this.series,
      seriesIndex: this.seriesIndex.subarray(0, n),
      times: this.times.subarray(0, n),
      values: this.values.subarray(0, n),
      length: n,
      minTime: n ? this.minTime : NaN,
      maxTime: n ? this.maxTime : NaN,
      seriesMinTime: Float64Array.from(this.sMin),
      seriesMaxTime: Float64Array.from(this.sMax),
    };
  }

  private grow(): void {
    const c = this.times.length * 2;
    const si = new Int32Array(c),
      t = new Float64Array(c),
      v = new Float64Array(c);
    si.set(this.seriesIndex);
    t.set(this.times);
    v.set(this.values);
    this.seriesIndex = si;
    this.times = t;
    this.values = v;
  }
}
