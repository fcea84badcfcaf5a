/**
 * Time in Timescope: epoch milliseconds (a JS number; a fraction carries microseconds), UTC,
 * ranges half-open [from, to). Every conversion from user input happens here.
 */
import { ApiError, invalidQuery } from './errors.js';

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

// 2024-01-15T10:30:00Z, 2024-01-15 10:30:00.123456+02:00, 2024-01-15T10:30Z, offsets +0200 and +02
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/;

const daysInMonth = (y: number, m: number) =>
  m === 2 ? ((y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;

/**
 * Parses an ISO 8601 date-time that carries a zone (`Z` or an offset). Returns epoch ms, or NaN
 * when the text is not such a date-time or names an impossible date (2024-02-30, 25:00).
 */
export function parseIsoTimestamp(text: string): number {
  const m = ISO.exec(text);
  if (!m) return NaN;
  const y = +m[1],
    mo = +m[2],
    d = +m[3],
    h = +m[4],
    mi = +m[5],
    s = m[6] ? +m[6] : 0;
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59) return NaN;
  let ms = Date.UTC(y, mo - 1, d, h, mi, s);
  if (y < 100) ms = new Date(ms).setUTCFullYear(y); // Date.UTC maps 0-99 to 1900-1999
  if (m[7]) ms += Number((m[7] + '000000').slice(0, 6)) / 1000; // keep microseconds as a fraction
  if (!m[8]) {
    const oh = +m[10],
      om = m[11] ? +m[11] : 0;
    if (oh > 23 || om > 59) return NaN;
    const off = (oh * 60 + om) * MINUTE;
    ms += m[9] === '+' ? -off : off;
  }
  return ms;
}

export type Precision = 's' | 'ms' | 'us' | 'ns';
const PRECISION_TO_MS: Record<Precision, number> = { s: 1000, ms: 1, us: 1 / 1000, ns: 1 / 1e6 };
export const PRECISIONS = Object.keys(PRECISION_TO_MS) as Precision[];

/** Epoch-ms numbers outside this window are almost certainly in another unit (s, µs, ns). */
export const MS_PLAUSIBLE_MIN = 1e11; // 1973-03-03
export const MS_PLAUSIBLE_MAX = 1e14; // year 5138

/** Which unit a bare epoch number most likely is in (InfluxDB 3's magnitude rule). */
export function guessPrecision(n: number): Precision {
  const a = Math.abs(n);
  return a < 5e9 ? 's' : a < 5e12 ? 'ms' : a < 5e15 ? 'us' : 'ns';
}

/**
 * An epoch number in the given precision, as epoch ms; or a reason it is refused. Without an explicit
 * precision the number must look like milliseconds (a seconds value is refused rather than stored in 1970).
 * Digits finer than a microsecond are dropped toward the earlier microsecond (floorToMicros), as
 * line protocol and ISO times drop them, so a time sent both ways is one point.
 */
export function epochToMs(n: number, precision: Precision | undefined): number | string {
  if (!Number.isFinite(n)) return 'must be a finite number';
  if (precision) return floorToMicros(n, precision);
  if (n < MS_PLAUSIBLE_MIN || n >= MS_PLAUSIBLE_MAX) {
    return `looks like epoch ${guessPrecision(n)}, not milliseconds; send milliseconds or set ?precision=${guessPrecision(n)}`;
  }
  return Number.isInteger(n) ? n : floorToMicros(n, 'ms');
}

/**
 * An epoch number in `precision` → epoch ms of the microsecond it falls in, finer digits dropped
 * toward the earlier microsecond (floor, also before 1970), as line protocol does. A JSON number is
 * a double, and the double nearest to an exact microsecond may lie a little below it
 * (1705314600123024000 ns is the double …023872): the microsecond is the latest one whose own
 * value in `precision`, as a double, is not after `n`, so such a number keeps its microsecond
 * (…123024 µs, not …123023), and 1705314600123456789 ns (the double …456768) is …123456 µs.
 */
export function floorToMicros(n: number, precision: Precision): number {
  // Within one of the answer: one correctly rounded operation, on a quotient below 2^53 for the
  // years Timescope stores with microseconds (|ms| < 2^42).
  const ns = precision === 'ns';
  const per = PRECISION_TO_MS[precision] * 1000; // microseconds per unit: 1e6, 1e3, 1 (exact); ns divides by 1000
  let us = Math.floor(ns ? n / 1000 : n * per);
  if ((ns ? us * 1000 : us / per) > n) us--;
  else if ((ns ? (us + 1) * 1000 : (us + 1) / per) <= n) us++;
  return us / 1000;
}

/** Times Timescope stores and queries: years 1 to 9999 (JavaScript dates and PostgreSQL both hold them). */
export const MIN_TIME_MS = -62_135_596_800_000; // 0001-01-01T00:00:00Z
export const MAX_TIME_MS = 253_402_300_800_000; // 10000-01-01T00:00:00Z (exclusive)

/** Whether `ms` is a finite epoch-ms time in [MIN_TIME_MS, MAX_TIME_MS). */
export const isSupportedTime = (ms: number) => ms >= MIN_TIME_MS && ms < MAX_TIME_MS;

const DURATION = /^(\d+)(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY, w: 7 * DAY };

/** `5m` → 300000. Returns NaN for anything that is not a positive `N(ms|s|m|h|d|w)`. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) return NaN;
  const ms = Number(m[1]) * UNIT_MS[m[2]];
  return ms > 0 && Number.isSafeInteger(ms) ? ms : NaN;
}

/** 300000 → `5m`: the largest unit that divides the duration. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['w', 7 * DAY],
    ['d', DAY],
    ['h', HOUR],
    ['m', MINUTE],
    ['s', SECOND],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * A time given in a query: ISO 8601 with zone, epoch milliseconds, `now`, or `now-<duration>` / `now+<duration>`
 * (`now-1h`, `now-7d`). Returns epoch ms or NaN; NaN also for a bare number that does not look like
 * epoch milliseconds (see epochQueryProblem for the reason to give).
 */
export function parseQueryTime(text: string, now: number): number {
  const t = text.trim();
  if (t === 'now') return now;
  // `now+1h` typed into a URL reaches us as `now 1h` (a bare `+` in a query string is a space).
  const rel = /^now([+ -])(\d+(?:ms|s|m|h|d|w))$/.exec(t);
  if (rel) {
    const d = parseDuration(rel[2]);
    return rel[1] === '-' ? now - d : now + d;
  }
  // Finer digits dropped toward the earlier microsecond, as at ingest (epochToMs) and for ISO times:
  // a bound given as the number a point was sent with is that point's time.
  if (EPOCH.test(t)) return epochQueryProblem(t) === undefined ? (epochToMs(Number(t), undefined) as number) : NaN;
  return parseIsoTimestamp(t);
}

const EPOCH = /^-?\d+(\.\d+)?$/;

/**
 * Why a bare number given as a query time is not taken as epoch milliseconds, or undefined when it
 * is (or when the text is not a bare number). As at ingest (epochToMs), a number outside
 * [MS_PLAUSIBLE_MIN, MS_PLAUSIBLE_MAX) is refused rather than guessed: epoch seconds read as
 * milliseconds would silently ask for January 1970.
 */
export function epochQueryProblem(text: string): string | undefined {
  const t = text.trim();
  if (!EPOCH.test(t)) return undefined;
  const n = Number(t);
  if (n >= MS_PLAUSIBLE_MIN && n < MS_PLAUSIBLE_MAX) return undefined;
  const unit = guessPrecision(n);
  const asMs = n * PRECISION_TO_MS[unit];
  const what =
    unit === 'ms'
      ? 'is too small for epoch milliseconds'
      : `looks like epoch ${{ s: 'seconds', us: 'microseconds', ns: 'nanoseconds' }[unit]}${asMs >= MS_PLAUSIBLE_MIN && asMs < MS_PLAUSIBLE_MAX ? ` (${Math.round(asMs)} in milliseconds)` : ''}`;
  return `${t} ${what}: a bare number is read as epoch milliseconds from ${MS_PLAUSIBLE_MIN} (1973) to ${MS_PLAUSIBLE_MAX} (5138) only; send epoch milliseconds or an ISO 8601 date-time with a zone`;
}

/**
 * The 400 INVALID_QUERY for a time parameter that parseQueryTime refused: why a bare number is not
 * read as epoch milliseconds (epochQueryProblem), or else the forms a query time takes. `raw` is
 * the parameter as given, `text` the same as text (undefined when it was neither text nor a number).
 */
export function queryTimeError(param: string, raw: unknown, text: string | undefined): ApiError {
  const epoch = text === undefined ? undefined : epochQueryProblem(text);
  return invalidQuery(
    param,
    epoch
      ? `${param}: ${epoch}`
      : `${param} must be an ISO 8601 date-time with a zone, epoch milliseconds, now, now-<duration> or now+<duration> (got ${JSON.stringify(raw)})`,
    epoch ? { expected: 'epoch milliseconds or ISO 8601' } : undefined,
  );
}

let isoDay = NaN;
let isoPrefix = '';
/** "00" … "59" and "000" … "999": looked up, not formatted, for each timestamp. */
const PAD2 = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

/**
 * Epoch ms → `2024-01-15T10:30:00.000Z`, exactly as Date#toISOString, several times faster for
 * runs of timestamps on the same day (a query answer of thousands of buckets): the date part is
 * formatted once per day, the time of day from small integers and the tables above (288
 * timestamps of a day of 5m buckets: 15 µs, against 23 µs padding each number to text).
 */
export function toIso(ms: number): string {
  const t = Math.floor(ms);
  if (!(t >= 0 && t < 253_402_300_800_000)) return new Date(t).toISOString(); // outside 1970-9999
  const day = Math.floor(t / DAY);
  if (day !== isoDay) {
    isoDay = day;
    isoPrefix = new Date(day * DAY).toISOString().slice(0, 11);
  }
  let r = (t - day * DAY) | 0; // ms into the day: an int32 from here
  const h = (r / HOUR) | 0;
  r -= h * HOUR;
  const m = (r / MINUTE) | 0;
  r -= m * MINUTE;
  const s = (r / SECOND) | 0;
  return `${isoPrefix}${PAD2[h]}:${PAD2[m]}:${PAD2[s]}.${PAD3[r - s * SECOND]}Z`;
}

/**
 * Epoch ms → [whole ms, µs past it (0-999)], the fraction rounded to the nearest microsecond and
 * carried into the millisecond when it rounds up to 1000. Rounding only the fraction (not ms × 1000,
 * which rounds once more) keeps the microsecond a double of epoch ms holds: all of them while
 * |ms| < 2^42 (years 1830 to 2109).
 */
function splitMicros(ms: number): [number, number] {
  const whole = Math.floor(ms);
  const us = Math.round((ms - whole) * 1000);
  return us === 1000 ? [whole + 1, 0] : [whole, us];
}

/** Epoch ms → whole epoch microseconds (what PostgreSQL and Parquet store). */
export function toEpochMicros(ms: number): number {
  const [whole, us] = splitMicros(ms);
  return whole * 1000 + us;
}

/**
 * Epoch ms → ISO 8601 UTC with microseconds when the value has them (`2024-01-15T10:30:00.000123Z`),
 * else as toIso (`.000Z`). A fraction that rounds up carries (…00.9999996 → …01.000Z).
 */
export function toIsoMicros(ms: number): string {
  const [whole, us] = splitMicros(ms);
  const iso = toIso(whole);
  return us ? `${iso.slice(0, -1)}${PAD3[us]}Z` : iso;
}

/** Floor to a multiple of `step` counted from the Unix epoch (what `date_bin(step, t, 'epoch')` does). */
export const floorTo = (ms: number, step: number) => Math.floor(ms / step) * step;
export const ceilTo = (ms: number, step: number) => Math.ceil(ms / step) * step;

/** "5d 12h 30m" as in the reference's health `uptime`. */
export function humanUptime(seconds: number): string {
  const d = Math.floor(seconds / 86400),
    h = Math.floor((seconds % 86400) / 3600),
    m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}
