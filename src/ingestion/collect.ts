import { FieldProblem, fieldErrors } from '../common/errors.js';
import { isCleanText } from '../common/input.js';
import { BoundedCache } from '../common/bounded-cache.js';
import { CanonicalSeries, canonicalTags, PointBatch, PointBatchBuilder, seriesKey } from '../storage/point-batch.js';
import {
  DecodeContext,
  MAX_PROBLEMS,
  MAX_UNIT_LENGTH,
  nameProblem,
  sourceProblem,
  tagKeyProblem,
  tagValueProblem,
  tooManyTagsMessage,
  valueProblem,
  timeProblem,
  timeWindow,
  tooManyPoints,
} from './decode.js';

/** A series validated and canonicalised in an earlier request, by its raw key (name, source, unit, tags as sent). */
export type ValidatedSeries = BoundedCache<CanonicalSeries>;

/**
 * Points of a decoded binary protocol (Prometheus remote write, OTLP) → one PointBatch, with the
 * JSON path's rules (decode.ts: names, tags, sources, times, limits), all or nothing: every problem
 * is collected with the field it came from, and `finish()` throws the 400 naming them. A series is
 * validated once per request: later points find it by its raw key (name, source, tags as given).
 */
export class PointCollector {
  readonly problems: FieldProblem[] = [];
  private readonly builder: PointBatchBuilder;
  private readonly window: { min: number; max: number };
  /** Raw series key → index in the batch, or -1 when the series was refused. */
  private readonly seen = new Map<string, number>();
  private points = 0;

  constructor(
    private readonly ctx: DecodeContext,
    capacity: number,
    /** Series validated by earlier requests (senders repeat their series): skips the rules and the sorting. */
    private readonly validated?: ValidatedSeries,
  ) {
    if (capacity > ctx.limits.maxPoints) throw tooManyPoints(capacity, ctx.limits);
    this.builder = new PointBatchBuilder(capacity);
    this.window = timeWindow(ctx);
  }

  /** 20 problems are enough to say what is wrong: decoders stop there. */
  get full(): boolean {
    return this.problems.length >= MAX_PROBLEMS;
  }

  get length(): number {
    return this.points;
  }

  problem(field: string, message: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push({ field, message });
  }

  /**
   * The batch index of a series, or undefined when it is refused (the problem is noted under
   * `field`). `tags` are given as pairs, in the sender's order; a key given twice is a problem.
   */
  series(
    name: string,
    source: string,
    tags: ReadonlyArray<readonly [string, string]>,
    unit: string | null,
    field: () => string,
  ): number | undefined {
    const l = this.ctx.limits;
    if (tags.length > l.maxTags) {
      // Counted before the key is built: a series with 100,000 labels costs nothing more.
      this.problem(field(), tooManyTagsMessage(l.maxTags));
      return undefined;
    }
    // Each part length-prefixed: a key no other series can spell (NUL separators could be forged by
    // a tag value holding NULs, and a cache hit skips validation). A null unit is not an empty one.
    let raw = `${name.length}:${name}${source.length}:${source}${unit === null ? '-' : `${unit.length}:${unit}`}`;
    for (const [k, v] of tags) raw += `${k.length}:${k}${v.length}:${v}`;
    const known = this.seen.get(raw);
    if (known !== undefined) return known < 0 ? undefined : known;
    let ref = this.validated?.get(raw);
    if (ref === undefined) {
      const problem = this.seriesProblem(name, source, tags, unit);
      if (problem) {
        this.problem(field(), problem);
        this.seen.set(raw, -1);
        return undefined;
      }
      const record: Record<string, string> = {};
      for (const [k, v] of tags) record[k] = v;
      const c = canonicalTags(record);
      ref = {
        key: seriesKey(name, source, c.tagsKey),
        metric: name,
        source,
        tags: c.tags,
        tagsKey: c.tagsKey,
        refs: undefined,
      };
      this.validated?.set(raw, ref);
    }
    // Two raw keys may name one series (tags in another order): the batch may list it twice, as the JSON decoder's does.
    const idx = this.builder.addCanonical(ref);
    if (unit !== null) this.builder.setUnit(idx, unit);
    this.seen.set(raw, idx);
    return idx;
  }

  /**
   * Adds a point of a series from `series()`; a time outside the accepted window is a problem under
   * `field`, and so is a value no rollup could sum (callers skip those first and count them: this
   * is the last lock, so that no protocol can store one).
   */
  point(series: number, ms: number, value: number, field: () => string): void {
    const bad = timeProblem(ms, this.window, this.ctx.limits) ?? valueProblem(value);
    if (bad) {
      this.problem(field(), bad);
      return;
    }
    if (++this.points > this.ctx.limits.maxPoints) throw tooManyPoints(this.points, this.ctx.limits);
    this.builder.push(series, ms, value);
  }

  finish(): PointBatch {
    if (this.problems.length > 0) throw fieldErrors(this.problems);
    return this.builder.build();
  }

  /** Why a series is refused; undefined when valid. */
  private seriesProblem(
    name: string,
    source: string,
    tags: ReadonlyArray<readonly [string, string]>,
    unit: string | null,
  ): string | undefined {
    const l = this.ctx.limits;
    const badName = nameProblem(name, l);
    if (badName) return `metric name ${JSON.stringify(name.slice(0, 80))} ${badName}`;
    const badSource = sourceProblem(source, l);
    if (badSource) return `source ${JSON.stringify(source.slice(0, 80))} ${badSource}`;
    const keys = new Set<string>();
    for (const [k, v] of tags) {
      const badKey = tagKeyProblem(k, l);
      if (badKey) return `tag ${badKey}`;
      if (keys.has(k)) return `tag ${JSON.stringify(k)} is given twice`;
      keys.add(k);
      const badValue = tagValueProblem(v, l);
      if (badValue) return `tag ${JSON.stringify(k)} ${badValue}`;
    }
    if (unit !== null && (unit.length > MAX_UNIT_LENGTH || !isCleanText(unit)))
      return `unit must be a string of at most ${MAX_UNIT_LENGTH} characters`;
    return undefined;
  }
}
