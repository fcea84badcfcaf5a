import { ApiError } from '../common/errors.js';
import { guessPrecision } from '../common/time.js';
import { canonicalTags, PointBatch, PointBatchBuilder, seriesKey } from '../storage/point-batch.js';
import {
  DecodeContext,
  exactDecimal,
  IngestLimits,
  KnownSeries,
  isStorableValue,
  MAX_ABS_VALUE,
  MAX_PROBLEMS,
  nameProblem,
  tagKeyProblem,
  tagValueProblem,
  timeProblem,
  timeWindow,
  tooManyPoints,
} from './decode.js';

/**
 * InfluxDB line protocol → one PointBatch, all or nothing. Pure: no NestJS, no database.
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * One scan over the body, no regular expression and no allocation per point on the way of a known
 * series: a line's measurement and tags (the text before its first unescaped space) are looked up
 * as sent in an index of series validated by earlier requests, and its field keys are matched in
 * place against the keys that series had last time (Telegraf sends the same fields in the same
 * order). Only an unseen series is unescaped, mapped to Timescope names and validated, with the
 * same rules as JSON ingest (decode.ts).
 *
 * Mapping: metric = `<measurement>_<field>` (the field `value` alone: `<measurement>`), with every
 * character outside Timescope's names replaced by `_` (Telegraf's Prometheus convention); tags are
 * tags (keys mapped the same way, values as sent); the bucket (v2) or database (v1) is the source.
 * Floats, integers (`12i`, int64) and unsigned integers (`12u`, uint64) are stored as doubles,
 * booleans as 1 and 0; string fields are checked and skipped (Timescope stores numbers only).
 */

export type LineProtocolPrecision = 'ns' | 'us' | 'ms' | 's' | 'm' | 'h';

/** The precisions of InfluxDB's v2 write API (`/api/v2/write`). */
export const V2_PRECISIONS: Readonly<Record<string, LineProtocolPrecision>> = { ns: 'ns', us: 'us', ms: 'ms', s: 's' };
/** The precisions of InfluxDB 1.x `/write` (`n`, `u`, `us` as InfluxDB 1.x also reads them). */
export const V1_PRECISIONS: Readonly<Record<string, LineProtocolPrecision>> = {
  ns: 'ns',
  n: 'ns',
  u: 'us',
  us: 'us',
  ms: 'ms',
  s: 's',
  m: 'm',
  h: 'h',
};

/** Epoch milliseconds per unit of a timestamp (ns is handled apart, to keep microseconds exact). */
const MS_PER_UNIT: Record<LineProtocolPrecision, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 };

export interface LineProtocolResult {
  batch: PointBatch;
  /** Lines that held a point (not blank, not comments). */
  lines: number;
  /** String fields checked and not stored. */
  skippedStringFields: number;
}

/** A series known by its field key as sent: a KnownSeries plus that raw key. */
interface FieldSeries extends KnownSeries {
  readonly raw: string;
}

/** A measurement and tag set as sent (the text before the first unescaped space), validated. */
interface LineSeries {
  readonly measurement: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly tagsKey: string;
  /** The field series this key had at each position of its last line, for in-place matching. */
  readonly fields: Array<FieldSeries | undefined>;
  readonly byField: Map<string, FieldSeries>;
}

/**
 * Series validated in earlier requests, by source and raw key. Bounded: past `capacity` entries
 * it starts afresh. Keys are copies, never slices of a request body (a slice would keep the whole
 * body alive as long as the entry).
 */
export class LineSeriesIndex {
  private bySource = new Map<string, Map<string, LineSeries>>();
  private entries = 0;

  constructor(readonly capacity: number) {}

  forSource(source: string): Map<string, LineSeries> {
    let m = this.bySource.get(source);
    if (m === undefined) this.bySource.set(own(source), (m = new Map()));
    return m;
  }

  /** Counts a new entry; true when the index was just emptied (the caller's maps are stale). */
  grow(): boolean {
    if (++this.entries <= this.capacity) return false;
    this.bySource = new Map();
    this.entries = 0;
    return true;
  }
}

/** A copy of `s` that shares no memory with the string it was sliced from. */
const own = (s: string): string => (s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8'));

// Character codes.
const TAB = 9,
  NL = 10,
  CR = 13,
  SP = 32,
  QUOTE = 34,
  HASH = 35,
  COMMA = 44,
  MINUS = 45,
  DOT = 46;
const D0 = 48,
  D9 = 57,
  EQ = 61,
  BSL = 92,
  UPPER_E = 69,
  LOWER_E = 101,
  LOWER_I = 105,
  LOWER_U = 117;

const BOOLEANS: Readonly<Record<string, number>> = {
  t: 1,
  T: 1,
  true: 1,
  True: 1,
  TRUE: 1,
  f: 0,
  F: 0,
  false: 0,
  False: 0,
  FALSE: 0,
};
const INT64_MAX = '9223372036854775807';
const INT64_MIN_ABS = '9223372036854775808';
const UINT64_MAX = '18446744073709551615';

/** The character may stand in a metric name (tag keys: without `:`). */
function nameChar(c: number, colon: boolean): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= D0 && c <= D9) ||
    c === 95 ||
    c === DOT ||
    c === MINUS ||
    (colon && c === 58)
  );
}

/**
 * A measurement, field or tag key as a Timescope name: characters outside letters, digits and
 * `_ . -` (and `:` in metric names) become `_`, and a name that does not start with a letter or
 * `_` gets a `_` in front (`1m_load` → `_1m_load`), as Telegraf's Prometheus output does.
 */
export function toName(s: string, colon: boolean, leading = true): string {
  let ok = true;
  for (let i = 0; i < s.length && ok; i++) ok = nameChar(s.charCodeAt(i), colon);
  let out = s;
  if (!ok) {
    out = '';
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (nameChar(c, colon)) out += s[i];
      else {
        out += '_';
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) i++; // one `_` for a character outside the BMP
      }
    }
  }
  const c0 = out.charCodeAt(0);
  return !leading || (c0 >= 97 && c0 <= 122) || (c0 >= 65 && c0 <= 90) || c0 === 95 ? out : `_${out}`;
}

/** The metric of a field: `<measurement>_<field>`, or the measurement alone for the field `value`. */
export const metricName = (measurement: string, field: string): string =>
  field === 'value' ? measurement : `${measurement}_${toName(field, true, false)}`;

interface Problem {
  line: number;
  message: string;
  text: string;
}

let batchCounter = 0;

class LineParser {
  private readonly builder: PointBatchBuilder;
  private readonly problems: Problem[] = [];
  private readonly batch = ++batchCounter;
  private readonly window: { min: number; max: number };
  private readonly limits: IngestLimits;
  private known: Map<string, LineSeries>;
  /** The fields of the line being read: their series and values (reused, so no allocation per point). */
  private lineRefs: FieldSeries[] = [];
  private lineValues = new Float64Array(64);
  private line = 0;
  /** The line the point being read starts on (a string field may hold newlines). */
  private pointLine = 0;
  private lines = 0;
  private skipped = 0;
  /** Where the value of the last field or timestamp parsed ended, or why it failed. */
  private end = 0;
  private error = '';
  /** The text being read: the whole body, or a piece of it that ends with a whole line. */
  private s = '';
  /** Whether `s` ends the body (else a string value that runs to its end continues in the next piece). */
  private final = true;
  /** Set when a line runs past the end of a piece that is not the last. */
  private incomplete = false;

  constructor(
    size: number,
    private readonly source: string,
    private readonly precision: LineProtocolPrecision,
    private readonly ctx: DecodeContext,
    private readonly index: LineSeriesIndex,
  ) {
    this.limits = ctx.limits;
    this.window = timeWindow(ctx);
    this.known = index.forSource(source);
    this.builder = new PointBatchBuilder(Math.min(ctx.limits.maxPoints, (size >> 5) + 16));
  }

  get full(): boolean {
    return this.problems.length >= MAX_PROBLEMS;
  }

  /**
   * Reads the lines of `s` (the body, or a piece of it ending with a whole line). Returns how much
   * was read: all of it, or, when a string value runs past the end of a piece that is not the
   * last, the start of that line (the caller reads it again with more text).
   */
  chunk(s: string, final: boolean, first: boolean): number {
    this.s = s;
    this.final = final;
    const n = s.length;
    let pos = first && s.charCodeAt(0) === 0xfeff ? 1 : 0; // a byte order mark
    while (pos < n && this.problems.length < MAX_PROBLEMS) {
      this.line++;
      let p = pos;
      let c = s.charCodeAt(p);
      while (c === SP || c === TAB) c = s.charCodeAt(++p);
      if (p >= n) break;
      if (c === NL) pos = p + 1;
      else if (c === CR && (p + 1 === n || s.charCodeAt(p + 1) === NL)) pos = p + 2;
      else if (c === HASH) pos = this.nextLine(p);
      else {
        const next = this.point(p, pos);
        if (this.incomplete) {
          this.incomplete = false;
          this.line = this.pointLine - 1;
          this.lines--;
          return pos;
        }
        pos = next;
      }
    }
    return n;
  }

  finish(): LineProtocolResult {
    if (this.problems.length > 0) throw lineErrors(this.problems);
    return { batch: this.builder.build(), lines: this.lines, skippedStringFields: this.skipped };
  }

  /** Reads the point starting at `p` (its line starts at `lineStart`); returns where the next line starts. */
  private point(p: number, lineStart: number): number {
    const s = this.s,
      n = s.length;
    this.lines++;
    this.pointLine = this.line;

    // Measurement and tags: up to the first unescaped space.
    const keyStart = p;
    let commas = 0;
    let c = 0;
    for (; p < n; p++) {
      c = s.charCodeAt(p);
      if (c === BSL) {
        if (p + 1 < n && s.charCodeAt(p + 1) !== NL) p++;
      } else if (c === SP || c === NL) break;
      else if (c === COMMA) commas++;
    }
    if (p >= n || c === NL)
      return this.fail(
        lineStart,
        keyStart,
        'no fields: a point is `measurement[,tag=value...] field=value[,field=value...] [timestamp]`',
      );
    let ls = this.known.get(s.slice(keyStart, p));
    if (ls === undefined) {
      if (commas > this.limits.maxTags)
        return this.fail(lineStart, keyStart, `more than ${this.limits.maxTags} tags (INGEST_MAX_TAGS)`);
      const made = this.newSeries(keyStart, p);
      if (typeof made === 'string') return this.fail(lineStart, keyStart, made);
      ls = made;
    }
    while (c === SP || c === TAB) c = s.charCodeAt(++p);

    // Fields.
    let count = 0;
    for (let j = 0; ; j++) {
      if (p >= n || c === NL || c === CR)
        return this.fail(
          lineStart,
          p,
          j === 0 ? 'no fields after the measurement and tags' : 'a field is missing after a comma',
        );
      const keyAt = p;
      let fs = ls.fields[j];
      if (fs !== undefined && s.startsWith(fs.raw, p) && s.charCodeAt(p + fs.raw.length) === EQ) p += fs.raw.length;
      else {
        fs = undefined;
        for (; p < n; p++) {
          c = s.charCodeAt(p);
          if (c === BSL) {
            if (p + 1 < n && s.charCodeAt(p + 1) !== NL) p++;
          } else if (c === EQ || c === SP || c === COMMA || c === NL) break;
        }
        if (p >= n || c !== EQ)
          return this.fail(lineStart, keyAt, `field ${quote(s.slice(keyAt, p))} has no value (field=value)`);
        if (p === keyAt) return this.fail(lineStart, keyAt, 'a field key is empty');
      }
      const keyEnd = p++;
      c = s.charCodeAt(p);
      if (c === QUOTE) {
        if (!this.stringField(p)) {
          if (!this.final) {
            this.incomplete = true; // the string goes on in the next piece of the body
            return lineStart;
          }
          return this.fail(lineStart, keyAt, `field ${quote(s.slice(keyAt, keyEnd))}: ${this.error}`);
        }
        this.skipped++;
      } else {
        const v = this.value(p);
        if (Number.isNaN(v))
          return this.fail(lineStart, keyAt, `field ${quote(s.slice(keyAt, keyEnd))}: ${this.error}`);
        if (fs === undefined) {
          const raw = s.slice(keyAt, keyEnd);
          fs = ls.byField.get(raw);
          if (fs === undefined) {
            const made = this.newField(ls, raw);
            if (typeof made === 'string') return this.fail(lineStart, keyAt, made);
            fs = made;
          }
          ls.fields[j] = fs;
        }
        if (count === this.lineValues.length) this.growLine();
        this.lineRefs[count] = fs;
        this.lineValues[count++] = v;
      }
      p = this.end;
      c = s.charCodeAt(p);
      if (c === COMMA) c = s.charCodeAt(++p);
      else break;
    }

    // Timestamp, or the time of receipt.
    let time = this.ctx.now;
    let after = 'the fields';
    if (c === SP || c === TAB) {
      while (c === SP || c === TAB) c = s.charCodeAt(++p);
      if ((c >= D0 && c <= D9) || c === MINUS) {
        const tsAt = p;
        time = this.timestamp(p);
        if (Number.isNaN(time)) return this.fail(lineStart, tsAt, this.error);
        p = this.end;
        c = s.charCodeAt(p);
        const problem = timeProblem(time, this.window, this.limits);
        if (problem)
          return this.fail(lineStart, tsAt, `timestamp ${s.slice(tsAt, p)} ${problem}${this.precisionHint(tsAt, p)}`);
        while (c === SP || c === TAB) c = s.charCodeAt(++p);
        after = 'the timestamp';
      } else if (!(p >= n || c === NL || (c === CR && (p + 1 === n || s.charCodeAt(p + 1) === NL)))) {
        return this.fail(
          lineStart,
          p,
          `expected a timestamp (an integer) after the fields, found ${quote(token(s, p))}`,
        );
      }
    }
    if (c === CR && (p + 1 === n || s.charCodeAt(p + 1) === NL)) c = s.charCodeAt(++p);
    if (p < n && c !== NL) return this.fail(lineStart, p, `unexpected ${quote(token(s, p))} after ${after}`);
    if (this.problems.length > 0) return p + 1; // nothing is kept once the request is refused
    if (this.builder.length + count > this.limits.maxPoints)
      throw tooManyPoints(this.builder.length + count, this.limits);
    for (let k = 0; k < count; k++) {
      const f = this.lineRefs[k];
      if (f.batch !== this.batch) {
        f.batch = this.batch;
        f.idx = this.builder.addCanonical(f);
      }
      this.builder.push(f.idx, time, this.lineValues[k]);
    }
    return p + 1;
  }

  /** A new measurement and tag set: unescaped, mapped to names, validated, remembered. Returns the problem as text. */
  private newSeries(from: number, to: number): LineSeries | string {
    const s = this.s,
      l = this.limits;
    let p = from;
    const measurement = this.unescape(p, (p = this.scanTo(p, to, COMMA, -1)), false);
    if (measurement === '') return 'the measurement is empty';
    const keys: string[] = [];
    const values: string[] = [];
    while (p < to) {
      const k0 = p + 1;
      const eq = this.scanTo(k0, to, EQ, COMMA);
      if (eq >= to || s.charCodeAt(eq) !== EQ) return `tag ${quote(s.slice(k0, eq))} has no value (tag=value)`;
      const v0 = eq + 1;
      p = this.scanTo(v0, to, COMMA, EQ);
      if (p < to && s.charCodeAt(p) === EQ)
        return `tag ${quote(s.slice(k0, p))}: an = in a tag value must be escaped (\\=)`;
      const rawKey = this.unescape(k0, eq, true);
      const value = this.unescape(v0, p, true);
      if (rawKey === '') return 'a tag key is empty';
      if (value === '') return `tag ${quote(rawKey)} has an empty value`;
      const key = toName(rawKey, false);
      const badKey = tagKeyProblem(key, l);
      if (badKey) return `tag ${quote(rawKey)}: ${badKey}`;
      if (keys.includes(key))
        return `tag ${quote(key)} is given twice${key === rawKey ? '' : ` (as ${quote(rawKey)}, mapped to ${quote(key)})`}`;
      const badValue = tagValueProblem(value, l);
      if (badValue) return `tag ${quote(rawKey)}: the value ${badValue}`;
      keys.push(key);
      values.push(value);
    }
    const tags: Record<string, string> = {};
    for (let i = 0; i < keys.length; i++) tags[own(keys[i])] = own(values[i]);
    const c = canonicalTags(tags);
    const ls: LineSeries = {
      measurement: own(toName(measurement, true)),
      tags: c.tags,
      tagsKey: c.tagsKey,
      fields: [],
      byField: new Map(),
    };
    if (this.index.grow()) this.known = this.index.forSource(this.source);
    this.known.set(own(s.slice(from, to)), ls);
    return ls;
  }

  /** A new field of a known measurement and tag set: its metric name validated and remembered. */
  private newField(ls: LineSeries, raw: string): FieldSeries | string {
    const field = this.unescape(0, raw.length, true, raw);
    const metric = own(metricName(ls.measurement, field));
    const bad = nameProblem(metric, this.limits);
    if (bad) return `the metric name ${quote(metric)} (from the measurement and the field ${quote(field)}) ${bad}`;
    const key = own(raw);
    const fs: FieldSeries = {
      raw: key,
      key: seriesKey(metric, this.source, ls.tagsKey),
      metric,
      source: this.source,
      tags: ls.tags,
      tagsKey: ls.tagsKey,
      refs: undefined,
      batch: 0,
      idx: 0,
    };
    if (this.index.grow()) this.known = this.index.forSource(this.source);
    ls.byField.set(key, fs);
    return fs;
  }

  /** The first unescaped `stop` (or `also`) in [p, to), or `to`. */
  private scanTo(p: number, to: number, stop: number, also: number): number {
    const s = this.s;
    for (; p < to; p++) {
      const c = s.charCodeAt(p);
      if (c === BSL) p++;
      else if (c === stop || c === also) return p;
    }
    return to;
  }

  /**
   * The text of [from, to) with its escapes resolved: `\\` is `\`; `\,` and `\ ` (and `\=` in tags
   * and field keys) are the character; a backslash before anything else is itself.
   */
  private unescape(from: number, to: number, equals: boolean, s = this.s): string {
    let i = from;
    while (i < to && s.charCodeAt(i) !== BSL) i++;
    if (i === to) return s.slice(from, to);
    let out = '';
    let last = from;
    for (; i < to - 1; i++) {
      if (s.charCodeAt(i) !== BSL) continue;
      const c = s.charCodeAt(i + 1);
      if (c === BSL || c === COMMA || c === SP || (equals && c === EQ)) {
        out += s.slice(last, i);
        last = i + 1;
      }
      i++;
    }
    return out + s.slice(last, to);
  }

  /** A string field value starting at the quote `p`; sets `end` after the closing quote. Newlines inside count as lines. */
  private stringField(p: number): boolean {
    const s = this.s,
      n = s.length;
    const line = this.line;
    for (p++; p < n; p++) {
      const c = s.charCodeAt(p);
      if (c === BSL) p++;
      else if (c === QUOTE) {
        this.end = p + 1;
        return true;
      }
      if (s.charCodeAt(p) === NL) this.line++;
    }
    this.line = line; // the lines after it are read as lines again, with their own numbers
    this.error = 'the string value has no closing quote';
    return false;
  }

  /** A number or boolean field value at `p`; sets `end`. NaN (and `error`) when it is neither. */
  private value(p: number): number {
    const s = this.s,
      n = s.length;
    const from = p;
    let c = s.charCodeAt(p);
    // The token: up to the next comma, space or end of line.
    while (
      p < n &&
      c !== COMMA &&
      c !== SP &&
      c !== NL &&
      c !== TAB &&
      !(c === CR && (p + 1 === n || s.charCodeAt(p + 1) === NL))
    )
      c = s.charCodeAt(++p);
    this.end = p;
    if (p === from) return this.bad('the value is empty');
    const last = s.charCodeAt(p - 1);
    let i = from;
    const neg = s.charCodeAt(i) === MINUS;
    if (neg) i++;
    if (last === LOWER_I || last === LOWER_U) {
      const digits = p - 1 - i;
      if (digits === 0) return this.bad(`${quote(s.slice(from, p))} is not a number`);
      for (let k = i; k < p - 1; k++) {
        const d = s.charCodeAt(k);
        if (d < D0 || d > D9)
          return this.bad(`${quote(s.slice(from, p))} is not an integer (12i) or unsigned integer (12u)`);
      }
      if (last === LOWER_U) {
        if (neg) return this.bad(`${quote(s.slice(from, p))}: an unsigned integer cannot be negative`);
        if (outOfRange(s, i, p - 1, UINT64_MAX))
          return this.bad(`${s.slice(from, p)} is out of the range of a uint64 (0u to ${UINT64_MAX}u)`);
      } else if (outOfRange(s, i, p - 1, neg ? INT64_MIN_ABS : INT64_MAX)) {
        return this.bad(`${s.slice(from, p)} is out of the range of an int64 (-${INT64_MIN_ABS}i to ${INT64_MAX}i)`);
      }
      if (digits <= 15) {
        let m = 0;
        for (let k = i; k < p - 1; k++) m = m * 10 + (s.charCodeAt(k) - D0);
        return neg ? 0 - m : m; // 0 - 0 is 0: an integer has no -0
      }
      return Number(s.slice(from, p - 1)) + 0; // beyond 2^53: the nearest double
    }
    // A float: -?digits[.digits][e[+-]digits], at least one digit before the exponent.
    let m = 0,
      digits = 0,
      frac = 0,
      dot = false;
    for (; i < p; i++) {
      const d = s.charCodeAt(i);
      if (d >= D0 && d <= D9) {
        m = m * 10 + (d - D0);
        digits++;
        if (dot) frac++;
      } else if (d === DOT && !dot) dot = true;
      else break;
    }
    if (digits === 0) {
      const b = BOOLEANS[s.slice(from, p)];
      if (b !== undefined && Object.hasOwn(BOOLEANS, s.slice(from, p))) return b;
      return this.bad(
        `${quote(s.slice(from, p))} is not a number, integer (12i), unsigned integer (12u), boolean or "string"`,
      );
    }
    // No exponent: as parsing reads it, in one operation where that can be done.
    const exact = i === p ? exactDecimal(m, -frac) : undefined;
    if (exact !== undefined) return neg ? -exact : exact;
    if (i < p) {
      let d = s.charCodeAt(i);
      if (d !== LOWER_E && d !== UPPER_E) return this.bad(`${quote(s.slice(from, p))} is not a number`);
      d = s.charCodeAt(++i);
      if (d === 43 || d === MINUS) i++;
      if (i === p) return this.bad(`${quote(s.slice(from, p))} is not a number`);
      for (; i < p; i++) {
        d = s.charCodeAt(i);
        if (d < D0 || d > D9) return this.bad(`${quote(s.slice(from, p))} is not a number`);
      }
    }
    const v = Number(s.slice(from, p));
    if (!Number.isFinite(v)) return this.bad(`${s.slice(from, p)} is out of the range of a float64`);
    if (!isStorableValue(v))
      return this.bad(`${s.slice(from, p)} is beyond ±${MAX_ABS_VALUE}, the largest value stored`);
    return v;
  }

  /** The timestamp at `p` in the request's precision, as epoch ms (microseconds kept, finer truncated); sets `end`. */
  private timestamp(p: number): number {
    const s = this.s,
      n = s.length;
    const from = p;
    const neg = s.charCodeAt(p) === MINUS;
    if (neg) p++;
    const d0 = p;
    let c = s.charCodeAt(p);
    while (c >= D0 && c <= D9) c = s.charCodeAt(++p);
    this.end = p;
    if (p < n && c !== SP && c !== TAB && c !== NL && c !== CR) {
      while (p < n && (c = s.charCodeAt(p)) !== SP && c !== NL) p++;
      return this.bad(`the timestamp ${quote(s.slice(from, p))} is not an integer`);
    }
    if (p === d0) return this.bad('the timestamp has no digits');
    if (outOfRange(s, d0, p, neg ? INT64_MIN_ABS : INT64_MAX))
      return this.bad(`the timestamp ${s.slice(from, p)} is out of the range of an int64`);
    if (this.precision === 'ns') {
      // Whole microseconds, then the nanoseconds below them: exact for every time Timescope accepts.
      const cut = Math.max(d0, p - 3);
      let us = 0,
        rest = 0;
      for (let k = d0; k < cut; k++) us = us * 10 + (s.charCodeAt(k) - D0);
      for (let k = cut; k < p; k++) rest = rest * 10 + (s.charCodeAt(k) - D0);
      return (neg ? -(us + (rest > 0 ? 1 : 0)) : us) / 1000; // floor: 1 ns before the epoch is the microsecond before it
    }
    let v = 0;
    for (let k = d0; k < p; k++) v = v * 10 + (s.charCodeAt(k) - D0);
    if (neg) v = -v;
    return this.precision === 'us' ? Math.floor(v) / 1000 : v * MS_PER_UNIT[this.precision];
  }

  /** ` (looks like epoch ns: is precision=ns missing?)` when the number's magnitude suggests another precision. */
  private precisionHint(from: number, to: number): string {
    const guess = guessPrecision(Number(this.s.slice(from, to)));
    return guess !== this.precision && ['ns', 'us', 'ms', 's'].includes(this.precision)
      ? ` (read with precision=${this.precision}; it looks like epoch ${guess})`
      : '';
  }

  private bad(message: string): number {
    this.error = message;
    return NaN;
  }

  private growLine(): void {
    const v = new Float64Array(this.lineValues.length * 2);
    v.set(this.lineValues);
    this.lineValues = v;
  }

  /** Records a problem with the current line; returns where the next line starts. */
  private fail(lineStart: number, at: number, message: string): number {
    const end = this.s.indexOf('\n', at);
    const stop = end < 0 ? this.s.length : end;
    if (this.problems.length < MAX_PROBLEMS)
      this.problems.push({ line: this.pointLine, message, text: snippet(this.s, lineStart, stop) });
    return stop + 1;
  }

  private nextLine(p: number): number {
    const end = this.s.indexOf('\n', p);
    return end < 0 ? this.s.length : end + 1;
  }
}

/** Whether the digits [from, to) exceed `max` (a decimal string without sign). */
function outOfRange(s: string, from: number, to: number, max: string): boolean {
  while (from < to - 1 && s.charCodeAt(from) === D0) from++; // leading zeros
  const len = to - from;
  if (len !== max.length) return len > max.length;
  return s.slice(from, to) > max;
}

/** The text from `p` to the next space or end of line (for messages). */
function token(s: string, p: number): string {
  let e = p;
  while (e < s.length && e - p < 64) {
    const c = s.charCodeAt(e);
    if (c === SP || c === NL || c === CR || c === TAB) break;
    e++;
  }
  return s.slice(p, e);
}

const quote = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);

function snippet(s: string, from: number, to: number): string {
  const nl = s.indexOf('\n', from);
  if (nl >= 0 && nl < to) to = nl;
  let t = s.slice(from, Math.min(to, from + 200));
  if (t.endsWith('\r')) t = t.slice(0, -1);
  return to - from > 200 ? `${t}…` : t;
}

/** 400 naming every bad line (up to 20); the message names the first, with its text, as InfluxDB does. */
function lineErrors(problems: Problem[]): ApiError {
  const first = problems[0];
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more line${problems.length > 2 ? 's' : ''})` : '';
  return new ApiError(400, 'INVALID_REQUEST', `line ${first.line}: ${first.message}${more}: ${first.text}`, {
    line: first.line,
    errors: problems,
  });
}

/**
 * A Buffer body is decoded and read in pieces of about this many bytes, cut after a newline: one
 * string of a whole body of several hundred KB lands in V8's large-object space, and decoding it
 * cost about 2 ms per 370 KB (0.4 µs a point), forty times the cost of decoding it piece by piece.
 */
export const PIECE_BYTES = 64 * 1024;

/**
 * Parses a body of line protocol into one batch of points of `source`; throws a 400 naming the
 * bad lines (nothing of the request is kept), or a 413 past INGEST_MAX_POINTS_PER_REQUEST.
 * A Buffer is read as UTF-8 in pieces of `pieceBytes`.
 */
export function parseLineProtocol(
  body: string | Buffer,
  source: string,
  precision: LineProtocolPrecision,
  ctx: DecodeContext,
  index = new LineSeriesIndex(100_000),
  pieceBytes = PIECE_BYTES,
): LineProtocolResult {
  const parser = new LineParser(body.length, source, precision, ctx, index);
  if (typeof body === 'string') {
    parser.chunk(body, true, true);
    return parser.finish();
  }
  let off = 0;
  let size = pieceBytes;
  while (off < body.length && !parser.full) {
    let end = off + size >= body.length ? -1 : body.indexOf(NL, off + size);
    end = end < 0 ? body.length : end + 1;
    const text = body.toString('utf8', off, end);
    const read = parser.chunk(text, end === body.length, off === 0);
    if (read === text.length) {
      off = end;
      size = pieceBytes;
    } else {
      // A string value runs on past the piece: read that line again, with twice the text.
      for (let i = 0; i < read; i++) if (text.charCodeAt(i) === NL) off = body.indexOf(NL, off) + 1;
      size *= 2;
    }
  }
  return parser.finish();
}
