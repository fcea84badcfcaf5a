import { isCleanText } from '../common/input.js';
import { BACKSLASH, COLON, COMMA, LBRACE, LBRACKET, QUOTE, RBRACE, RBRACKET } from '../common/json-bytes.js';
import { epochToMs, parseIsoTimestamp } from '../common/time.js';
import { PointBatch, PointBatchBuilder } from '../storage/point-batch.js';
import {
  DecodeContext,
  exactDecimal,
  KnownSeries,
  knownSeries,
  isStorableValue,
  MAX_UNIT_LENGTH,
  nameProblem,
  sourceProblem,
  tagKeyProblem,
  tagValueProblem,
  timeProblem,
  timeWindow,
} from './decode.js';

/**
 * A byte-level scanner for the common shapes of the JSON ingest bodies, straight from the request
 * bytes into a PointBatch, without building the JSON object tree (JSON.parse was about half of
 * the service's CPU per point on the 5,000-point reference bodies).
 *
 * It accepts only what it is sure of: `{source, timestamp?, metrics: [{name, value, unit?, tags?,
 * timestamp?}]}` (POST /api/v1/metrics) and `{batches: [that, …]}` (/api/v1/metrics/batch), keys
 * in any order but each once, strings without escapes, and only bodies that the slow path
 * (JSON.parse + decode.ts) would accept in full. Anything else — an escape, an unknown key, a
 * duplicate key, a bad name, a time out of the window, too many points, a syntax error — answers
 * `undefined`, and the caller takes the slow path, which then gives the answer (the points or the
 * error) exactly as before. So the scanner never has to reproduce an error message; it must only
 * never accept a body differently from the slow path (test/unit/json-scan.test.ts checks that
 * on random and adversarial bodies).
 */

/** Thrown inside the scanner: "not a shape I am sure of", caught by the entry points. */
const BAIL = new Error('json-scan: not a common shape');

const MINUS = 0x2d,
  PLUS = 0x2b,
  DOT = 0x2e,
  D0 = 0x30,
  D9 = 0x39,
  LOWER_E = 0x65,
  UPPER_E = 0x45,
  LOWER_N = 0x6e;

/** Key bytes: the names the scanner knows, compared without making strings. */
const K = (s: string) => Buffer.from(s, 'latin1');
const KEY_NAME = K('name'),
  KEY_VALUE = K('value'),
  KEY_UNIT = K('unit'),
  KEY_TAGS = K('tags'),
  KEY_TIMESTAMP = K('timestamp'),
  KEY_SOURCE = K('source'),
  KEY_METRICS = K('metrics'),
  KEY_BATCHES = K('batches');

/** One series as sent (name and tags in their order, the bytes), validated once. */
interface Entry {
  /** name \0 key1 \0 value1 \0 … \0, as in the body. */
  bytes: Buffer;
  known: KnownSeries;
  next: Entry | undefined;
  /**
   * The entry of the point that came right after one of this series last time, in a body of the
   * same source: senders repeat their series in the same order, so that guess, checked byte for
   * byte, usually spares the hash and the lookup.
   */
  after: Entry | undefined;
}

/**
 * Series already validated, by source, then by a hash of the name and tag bytes as sent (the
 * same identity as decode.ts's KnownSeriesIndex trie, so a batch lists its series in the same
 * order as the slow path). Bounded: a body that finds more than `capacity` entries starts it
 * afresh (between bodies, so that one body never sees a series twice).
 */
export class ScanSeriesCache {
  private bySource = new Map<string, Map<number, Entry>>();
  private entries = 0;
  constructor(readonly capacity: number) {}

  begin(): void {
    if (this.entries <= this.capacity) return;
    this.bySource = new Map();
    this.entries = 0;
  }

  table(source: string): Map<number, Entry> {
    let t = this.bySource.get(source);
    if (t === undefined) this.bySource.set(source, (t = new Map()));
    return t;
  }

  added(): void {
    this.entries++;
  }
}

let scanBatchCounter = 0;

class Scanner {
  private p = 0;
  private readonly end: number;
  private readonly window: { min: number; max: number };
  readonly builder: PointBatchBuilder;
  private readonly batchNo = ++scanBatchCounter;
  private points = 0;
  /** The last string scanned: [sStart, sEnd) and whether it held bytes >= 0x80. */
  private sStart = 0;
  private sEnd = 0;
  private sWide = false;
  /** The last ISO timestamp text (a span of the body) and its time. */
  private tsStart = 0;
  private tsEnd = -1;
  private tsMs = NaN;
  /** The last unit (a span of the body) and its string. */
  private unitStart = 0;
  private unitEnd = 0;
  private unit: string | undefined = undefined;
  /** The entry of the previous point of this submission (see Entry.after). */
  private prev: Entry | undefined = undefined;
  /** Tag spans of the point being scanned: key start, key end, value start, value end. */
  private tagSpans = new Int32Array(64);

  constructor(
    private readonly b: Buffer,
    private readonly ctx: DecodeContext,
    private readonly cache: ScanSeriesCache,
  ) {
    this.end = b.length;
    cache.begin();
    this.window = timeWindow(ctx);
    // A guess from the size (the reference shape is 35-140 bytes a point); the builder grows if needed.
    this.builder = new PointBatchBuilder(Math.min(ctx.limits.maxPoints, Math.max(16, b.length >> 7)));
  }

  /** Skips whitespace; the byte there, or -1 at the end. */
  private ws(): number {
    const b = this.b;
    let p = this.p;
    while (p < this.end) {
      const c = b[p];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.p = p;
    return p < this.end ? b[p] : -1;
  }

  private expect(c: number): void {
    if (this.ws() !== c) throw BAIL;
    this.p++;
  }

  /** A string without escapes or control characters at `p` (its opening quote); sets sStart/sEnd. */
  private string(): void {
    const b = this.b;
    let p = this.p;
    if (b[p] !== QUOTE) throw BAIL;
    const start = ++p;
    let wide = 0;
    for (;;) {
      if (p >= this.end) throw BAIL;
      const c = b[p];
      if (c === QUOTE) break;
      if (c === BACKSLASH || c < 0x20) throw BAIL;
      wide |= c;
      p++;
    }
    this.sStart = start;
    this.sEnd = p;
    this.sWide = wide >= 0x80;
    this.p = p + 1;
  }

  /** The last string scanned, as JSON.parse would give it. */
  private text(): string {
    const s = this.b.toString(this.sWide ? 'utf8' : 'latin1', this.sStart, this.sEnd);
    // Malformed UTF-8 decodes to U+FFFD: different bytes, one string. Leave that to the slow path.
    if (this.sWide && s.includes('\ufffd')) throw BAIL;
    return s;
  }

  /** Whether the last string scanned is `key`. */
  private is(key: Buffer): boolean {
    const n = key.length;
    if (this.sEnd - this.sStart !== n) return false;
    const b = this.b,
      s = this.sStart;
    for (let i = 0; i < n; i++) if (b[s + i] !== key[i]) return false;
    return true;
  }

  private sameSpan(s1: number, e1: number, s2: number, e2: number): boolean {
    if (e1 - s1 !== e2 - s2) return false;
    const b = this.b;
    for (let i = 0; i < e1 - s1; i++) if (b[s1 + i] !== b[s2 + i]) return false;
    return true;
  }

  /**
   * Whether the string at `p` (its opening quote) holds exactly the bytes [s, e) of `src`: a key
   * name, or a string of this body scanned earlier, which string() accepted (so no escape or
   * control character can lie between the quotes). If so, steps over it as string() would.
   */
  private atBytes(src: Buffer, s: number, e: number): boolean {
    const b = this.b,
      q = this.p + 1,
      n = e - s;
    if (n < 0 || q + n >= this.end || b[q + n] !== QUOTE) return false;
    for (let i = 0; i < n; i++) if (b[q + i] !== src[s + i]) return false;
    this.sStart = q;
    this.sEnd = q + n;
    this.p = q + n + 1;
    return true;
  }

  /** Whether the string at `p` is `key` (see atBytes). */
  private atKey(key: Buffer): boolean {
    return this.atBytes(key, 0, key.length);
  }

  /** `"key":` at `p`, leaves `p` on the value's first byte; the key is the last string. */
  private key(): number {
    this.string();
    this.expect(COLON);
    return this.ws();
  }

  private isNull(): boolean {
    const b = this.b,
      p = this.p;
    if (b[p] !== LOWER_N) return false;
    if (b[p + 1] !== 0x75 || b[p + 2] !== 0x6c || b[p + 3] !== 0x6c) throw BAIL;
    this.p = p + 4;
    return true;
  }

  /** A JSON number at `p`, exactly as JSON.parse reads it. */
  private number(): number {
    const b = this.b;
    let p = this.p;
    const start = p;
    let neg = false;
    if (b[p] === MINUS) {
      neg = true;
      p++;
    }
    let mant = 0,
      frac = 0,
      c = b[p];
    if (c === D0) {
      c = b[++p];
      if (c >= D0 && c <= D9) throw BAIL; // a leading zero is not JSON
    } else if (c > D0 && c <= D9) {
      while (c >= D0 && c <= D9) {
        mant = mant * 10 + (c - D0);
        c = b[++p];
      }
    } else throw BAIL;
    if (c === DOT) {
      c = b[++p];
      if (!(c >= D0 && c <= D9)) throw BAIL;
      while (c >= D0 && c <= D9) {
        mant = mant * 10 + (c - D0);
        frac++;
        c = b[++p];
      }
    }
    let exp = 0,
      expDigits = 0;
    if (c === LOWER_E || c === UPPER_E) {
      c = b[++p];
      let expNeg = false;
      if (c === PLUS || c === MINUS) {
        expNeg = c === MINUS;
        c = b[++p];
      }
      if (!(c >= D0 && c <= D9)) throw BAIL;
      while (c >= D0 && c <= D9) {
        if (expDigits < 6) exp = exp * 10 + (c - D0);
        expDigits++;
        c = b[++p];
      }
      if (expNeg) exp = -exp;
    }
    this.p = p;
    // As JSON.parse reads it: exactly in one operation where that can be done, else from the text.
    const v = expDigits < 6 ? exactDecimal(mant, exp - frac) : undefined;
    if (v !== undefined) return neg ? -v : v;
    return Number(b.toString('latin1', start, p));
  }

  /** A timestamp (ISO string or epoch number) at `p`, in the accepted window, as epoch ms. */
  private time(): number {
    const c = this.b[this.p];
    let ms: number;
    if (c === QUOTE) {
      // Points of a scrape share it: the last timestamp's text, compared where it stands.
      if (this.atBytes(this.b, this.tsStart, this.tsEnd)) return this.tsMs;
      this.string();
      ms = parseIsoTimestamp(this.text());
      if (Number.isNaN(ms) || timeProblem(ms, this.window, this.ctx.limits) !== undefined) throw BAIL;
      this.tsStart = this.sStart;
      this.tsEnd = this.sEnd;
      this.tsMs = ms;
      return ms;
    }
    if (c === MINUS || (c >= D0 && c <= D9)) {
      const r = epochToMs(this.number(), this.ctx.precision);
      if (typeof r === 'string' || timeProblem(r, this.window, this.ctx.limits) !== undefined) throw BAIL;
      return r;
    }
    throw BAIL;
  }

  /** Only whitespace may follow the body's value. */
  finishBody(): void {
    if (this.ws() !== -1) throw BAIL;
  }

  /** `{batches: [submission, …]}` and nothing after it. */
  batches(): void {
    this.expect(LBRACE);
    this.ws();
    this.key();
    if (!this.is(KEY_BATCHES)) throw BAIL;
    this.expect(LBRACKET);
    if (this.ws() === RBRACKET) this.p++;
    else
      for (;;) {
        this.submission();
        const c = this.ws();
        this.p++;
        if (c === RBRACKET) break;
        if (c !== COMMA) throw BAIL;
      }
    this.expect(RBRACE);
    this.finishBody();
  }

  /** `{source, timestamp?, metrics}` with source (and timestamp) before metrics. */
  submission(): void {
    this.expect(LBRACE);
    let source: string | undefined;
    let batchTime = this.ctx.now;
    let seen = 0;
    if (this.ws() === RBRACE) throw BAIL;
    for (;;) {
      const c = this.key();
      if (this.is(KEY_SOURCE)) {
        if (seen & 5) throw BAIL;
        seen |= 1;
        this.string();
        source = this.text();
        if (sourceProblem(source, this.ctx.limits) !== undefined) throw BAIL;
      } else if (this.is(KEY_TIMESTAMP)) {
        if (seen & 6) throw BAIL;
        seen |= 2;
        if (!this.isNull()) batchTime = this.time();
      } else if (this.is(KEY_METRICS)) {
        if (source === undefined || seen & 4 || c !== LBRACKET) throw BAIL;
        seen |= 4;
        this.metrics(source, batchTime);
      } else throw BAIL;
      const d = this.ws();
      this.p++;
      if (d === RBRACE) break;
      if (d !== COMMA || this.ws() !== QUOTE) throw BAIL;
    }
    if (!(seen & 4)) throw BAIL;
  }

  private metrics(source: string, defaultTime: number): void {
    this.p++; // [
    if (this.ws() === RBRACKET) {
      this.p++;
      return;
    }
    const table = this.cache.table(source);
    this.prev = undefined; // guesses stay within one source's table
    for (;;) {
      if (++this.points > this.ctx.limits.maxPoints) throw BAIL;
      this.point(table, source, defaultTime);
      const c = this.ws();
      this.p++;
      if (c === RBRACKET) return;
      if (c !== COMMA) throw BAIL;
    }
  }

  /** `{name, value, unit?, tags?, timestamp?}` at `p`. */
  private point(table: Map<number, Entry>, source: string, defaultTime: number): void {
    this.expect(LBRACE);
    if (this.ws() === RBRACE) throw BAIL;
    let seen = 0,
      nameStart = 0,
      nameEnd = 0,
      value = 0,
      unitStart = -1,
      unitEnd = -1,
      tags = 0,
      time = defaultTime;
    for (;;) {
      // The five keys compared where they stand (string() and is() in one pass); any other key,
      // or one spelled with an escape, is not one of them: the slow path.
      if (this.b[this.p] !== QUOTE) throw BAIL;
      const bit = this.atKey(KEY_NAME)
        ? 1
        : this.atKey(KEY_VALUE)
          ? 2
          : this.atKey(KEY_UNIT)
            ? 4
            : this.atKey(KEY_TAGS)
              ? 8
              : this.atKey(KEY_TIMESTAMP)
                ? 16
                : 0;
      if (bit === 0) throw BAIL;
      this.expect(COLON);
      const c = this.ws();
      if (bit === 1) {
        this.string();
        nameStart = this.sStart;
        nameEnd = this.sEnd;
      } else if (bit === 2) {
        if (c !== MINUS && !(c >= D0 && c <= D9)) throw BAIL;
        value = this.number();
      } else if (bit === 4) {
        if (!this.isNull()) {
          this.string();
          unitStart = this.sStart;
          unitEnd = this.sEnd;
        }
      } else if (bit === 8) {
        if (!this.isNull()) tags = this.tags();
      } else if (!this.isNull()) time = this.time();
      if (seen & bit) throw BAIL;
      seen |= bit;
      const d = this.ws();
      this.p++;
      if (d === RBRACE) break;
      if (d !== COMMA || this.ws() !== QUOTE) throw BAIL;
    }
    if ((seen & 3) !== 3 || !isStorableValue(value)) throw BAIL; // decode.ts names the problem

    const known = this.series(table, source, nameStart, nameEnd, tags);
    const builder = this.builder;
    if (known.batch !== this.batchNo) {
      known.batch = this.batchNo;
      known.idx = builder.addCanonical(known);
    }
    if (unitStart >= 0) {
      if (this.unit === undefined || !this.sameSpan(unitStart, unitEnd, this.unitStart, this.unitEnd)) {
        this.sStart = unitStart;
        this.sEnd = unitEnd;
        this.sWide = false;
        for (let i = unitStart; i < unitEnd; i++) if (this.b[i] >= 0x80) this.sWide = true;
        const unit = this.text();
        if (unit.length > MAX_UNIT_LENGTH || !isCleanText(unit)) throw BAIL;
        this.unit = unit;
        this.unitStart = unitStart;
        this.unitEnd = unitEnd;
      }
      builder.setUnit(known.idx, this.unit);
    }
    builder.push(known.idx, time, value);
  }

  /** `{k: "v", …}` at `p`: records the spans, answers how many. */
  private tags(): number {
    if (this.b[this.p] !== LBRACE) throw BAIL;
    this.p++;
    let n = 0;
    if (this.ws() === RBRACE) {
      this.p++;
      return 0;
    }
    const max = this.ctx.limits.maxTags;
    for (;;) {
      if (n >= max) throw BAIL;
      if (n * 4 + 4 > this.tagSpans.length) {
        const grown = new Int32Array(this.tagSpans.length * 2);
        grown.set(this.tagSpans);
        this.tagSpans = grown;
      }
      this.key();
      const at = n * 4;
      this.tagSpans[at] = this.sStart;
      this.tagSpans[at + 1] = this.sEnd;
      this.string();
      this.tagSpans[at + 2] = this.sStart;
      this.tagSpans[at + 3] = this.sEnd;
      n++;
      const d = this.ws();
      this.p++;
      if (d === RBRACE) return n;
      if (d !== COMMA || this.ws() !== QUOTE) throw BAIL;
    }
  }

  /** The validated series of a name and tags as sent: from the cache, or validated now. */
  private series(table: Map<number, Entry>, source: string, ns: number, ne: number, tags: number): KnownSeries {
    const guess = this.prev?.after;
    if (guess !== undefined && this.matches(guess.bytes, ns, ne, tags)) {
      this.prev = guess;
      return guess.known;
    }
    const entry = this.entry(table, source, ns, ne, tags);
    if (this.prev !== undefined) this.prev.after = entry;
    this.prev = entry;
    return entry.known;
  }

  private entry(table: Map<number, Entry>, source: string, ns: number, ne: number, tags: number): Entry {
    const b = this.b,
      spans = this.tagSpans;
    // FNV-1a over name \0 k \0 v \0 …
    let h = 0x811c9dc5;
    for (let i = ns; i < ne; i++) h = Math.imul(h ^ b[i], 0x01000193);
    h = Math.imul(h, 0x01000193);
    for (let t = 0; t < tags * 2; t++) {
      const s = spans[t * 2],
        e = spans[t * 2 + 1];
      for (let i = s; i < e; i++) h = Math.imul(h ^ b[i], 0x01000193);
      h = Math.imul(h, 0x01000193);
    }
    for (let entry = table.get(h); entry !== undefined; entry = entry.next)
      if (this.matches(entry.bytes, ns, ne, tags)) return entry;
    const known = this.validate(source, ns, ne, tags);
    // The key bytes as above, for comparing on a hash collision.
    let len = ne - ns + 1;
    for (let t = 0; t < tags * 2; t++) len += spans[t * 2 + 1] - spans[t * 2] + 1;
    const bytes = Buffer.alloc(len);
    let o = b.copy(bytes, 0, ns, ne) + 1;
    for (let t = 0; t < tags * 2; t++) o += b.copy(bytes, o, spans[t * 2], spans[t * 2 + 1]) + 1;
    this.cache.added();
    const entry: Entry = { bytes, known, next: table.get(h), after: undefined };
    table.set(h, entry);
    return entry;
  }

  private matches(bytes: Buffer, ns: number, ne: number, tags: number): boolean {
    const b = this.b,
      spans = this.tagSpans;
    let o = 0;
    for (let t = -1; t < tags * 2; t++) {
      const s = t < 0 ? ns : spans[t * 2],
        e = t < 0 ? ne : spans[t * 2 + 1];
      if (o + (e - s) >= bytes.length) return false;
      for (let i = s; i < e; i++) if (bytes[o++] !== b[i]) return false;
      if (bytes[o++] !== 0) return false;
    }
    return o === bytes.length;
  }

  /** A series not seen before: the rules of decode.ts, then canonical tags. */
  private validate(source: string, ns: number, ne: number, tags: number): KnownSeries {
    const l = this.ctx.limits;
    const spanText = (s: number, e: number) => {
      this.sStart = s;
      this.sEnd = e;
      this.sWide = false;
      for (let i = s; i < e; i++) if (this.b[i] >= 0x80) this.sWide = true;
      return this.text();
    };
    const name = spanText(ns, ne);
    if (nameProblem(name, l) !== undefined) throw BAIL;
    const raw: Record<string, string> = {};
    for (let t = 0; t < tags; t++) {
      const k = spanText(this.tagSpans[t * 4], this.tagSpans[t * 4 + 1]);
      const v = spanText(this.tagSpans[t * 4 + 2], this.tagSpans[t * 4 + 3]);
      // A duplicate key (JSON.parse keeps the last) or one that is not a plain property: slow path.
      if (Object.prototype.hasOwnProperty.call(raw, k)) throw BAIL;
      if (tagKeyProblem(k, l) !== undefined || tagValueProblem(v, l) !== undefined) throw BAIL;
      raw[k] = v;
    }
    return knownSeries(name, source, tags > 0 ? raw : undefined);
  }
}

function run(body: Buffer, ctx: DecodeContext, cache: ScanSeriesCache, shape: 'submission' | 'batches') {
  const s = new Scanner(body, ctx, cache);
  try {
    if (shape === 'batches') s.batches();
    else {
      s.submission();
      s.finishBody();
    }
  } catch (err) {
    if (err === BAIL) return undefined;
    throw err;
  }
  return s.builder.build();
}

/** POST /api/v1/metrics, `{source, timestamp?, metrics}`: the batch, or undefined for the slow path. */
export function scanSubmission(body: Buffer, ctx: DecodeContext, cache: ScanSeriesCache): PointBatch | undefined {
  return run(body, ctx, cache, 'submission');
}

/** POST /api/v1/metrics/batch, `{batches: [...]}`: the batch, or undefined for the slow path. */
export function scanBatches(body: Buffer, ctx: DecodeContext, cache: ScanSeriesCache): PointBatch | undefined {
  return run(body, ctx, cache, 'batches');
}
