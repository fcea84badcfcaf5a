import { DAY, HOUR, MINUTE, SECOND, toIso } from '../common/time.js';

/**
 * The JSON bytes of GET /api/v1/metrics/query's answers, exactly what JSON.stringify writes for
 * them (test/unit/query-serialization.test.ts holds it to that), written straight into one Buffer
 * where the bulk is: the data points, at the top and in each group. The other keys go through
 * JSON.stringify. Writing a point allocates nothing but its value's text: the timestamp's digits
 * are written from the bucket's epoch ms. Building the answer as text (an ISO string per point,
 * the text, then its bytes) made a 1-day request allocate 295 KB, now 142 KB, and took 8.0 ms
 * for a 30-day answer of 8,641 points, now 3.3 ms (bench/RESULTS.md, "Query answers"). The
 * OpenAPI document's description of the same answer is openapi/schemas/query.ts's QueryResult.
 */
export function queryAnswerJson(answer: object): Buffer {
  const parts: Part[] = [];
  writeObject(answer, parts);
  let size = 0;
  for (const p of parts) size += typeof p === 'string' ? Buffer.byteLength(p) : 2 + p.length * MAX_POINT_BYTES;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const p of parts) o = typeof p === 'string' ? o + out.write(p, o) : writePoints(out, o, p);
  return out.subarray(0, o);
}

/** Text as it is, or a run of QueryPoints to write as a JSON array. */
type Part = string | readonly QueryPoint[];

/** `answer` as JSON into `parts`, with QueryPoint arrays under `data_points` left for writePoints. */
function writeObject(answer: object, parts: Part[]): void {
  const o = answer as Record<string, unknown>;
  if (typeof o.toJSON === 'function') return void parts.push(JSON.stringify(o) ?? 'null');
  parts.push('{');
  let first = true;
  for (const key of Object.keys(o)) {
    const value = o[key];
    let text: string | undefined;
    let points: readonly QueryPoint[] | undefined;
    let groups: unknown[] | undefined;
    if (key === 'data_points' && Array.isArray(value) && value.every((p) => p instanceof QueryPoint)) points = value;
    else if (key === 'groups' && Array.isArray(value)) groups = value;
    else text = JSON.stringify(value); // undefined for what JSON.stringify leaves out (undefined, functions)
    if (text === undefined && !points && !groups) continue;
    parts.push(`${first ? '' : ','}${JSON.stringify(key)}:`);
    first = false;
    if (points) parts.push(points);
    else if (groups) {
      parts.push('[');
      groups.forEach((g, i) => {
        if (i > 0) parts.push(',');
        if (isPlainObject(g)) writeObject(g, parts);
        else parts.push(JSON.stringify(g) ?? 'null');
      });
      parts.push(']');
    } else parts.push(text!);
  }
  parts.push('}');
}

const isPlainObject = (v: unknown): v is object =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;

/**
 * One bucket of a query answer: its start (epoch ms) and its value, finite or null (set here
 * only). JSON.stringify writes it as `{"timestamp": <toIso>, "value": …}`, as writePoints does.
 */
export class QueryPoint {
  readonly t: number;
  readonly value: number | null;
  constructor(t: number, v: number | null) {
    this.t = t;
    this.value = jsonNumber(v);
  }
  get timestamp(): string {
    return toIso(this.t);
  }
  toJSON(): { timestamp: string; value: number | null } {
    return { timestamp: toIso(this.t), value: this.value };
  }
}

/**
 * The most bytes one point takes: `,{"timestamp":"` (15), a timestamp (at most 27, years past
 * 9999), `","value":` (10), a number as String writes it (at most 24, `-1.7976931348623157e+308`)
 * and `}`.
 */
const MAX_POINT_BYTES = 15 + 27 + 10 + 24 + 1;
const OPEN = ascii('{"timestamp":"');
const MID = ascii('","value":');
const NULL = ascii('null');

let dayOf = NaN;
let dayBytes = ascii('1970-01-01T'); // the date part of the timestamps of day dayOf

/** A string's bytes (ASCII only). */
function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * Copies `bytes` (or an ASCII string) into `out` at `o` and returns the offset after them: byte
 * by byte, since for a few bytes Buffer#copy and Buffer#write cost more in their argument checks
 * than in copying (most of the writer's time when it used them).
 */
function put(out: Buffer, o: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) out[o + i] = bytes[i];
  return o + bytes.length;
}
function putAscii(out: Buffer, o: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[o + i] = s.charCodeAt(i);
  return o + s.length;
}

/** `[{"timestamp":…,"value":…},…]` into `out` at `o`; returns the offset after it. */
function writePoints(out: Buffer, o: number, points: readonly QueryPoint[]): number {
  out[o++] = 0x5b; // [
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    if (i > 0) out[o++] = 0x2c; // ,
    o = put(out, o, OPEN);
    o = writeTimestamp(out, o, p.t);
    o = put(out, o, MID);
    const v = p.value;
    o = v === null ? put(out, o, NULL) : putAscii(out, o, String(v)); // a finite number's text is ASCII
    out[o++] = 0x7d; // }
  }
  out[o++] = 0x5d; // ]
  return o;
}

/** toIso(ms) as bytes: the date part copied once per day, the time of day written digit by digit. */
function writeTimestamp(out: Buffer, o: number, ms: number): number {
  const t = Math.floor(ms);
  if (!(t >= 0 && t < 253_402_300_800_000)) return putAscii(out, o, toIso(t)); // outside 1970-9999
  const day = Math.floor(t / DAY);
  if (day !== dayOf) {
    dayOf = day;
    dayBytes = ascii(new Date(day * DAY).toISOString().slice(0, 11));
  }
  o = put(out, o, dayBytes);
  let r = (t - day * DAY) | 0; // ms into the day
  const h = (r / HOUR) | 0;
  r -= h * HOUR;
  const m = (r / MINUTE) | 0;
  r -= m * MINUTE;
  const s = (r / SECOND) | 0;
  r -= s * SECOND;
  out[o] = 0x30 + ((h / 10) | 0);
  out[o + 1] = 0x30 + (h % 10);
  out[o + 2] = 0x3a; // :
  out[o + 3] = 0x30 + ((m / 10) | 0);
  out[o + 4] = 0x30 + (m % 10);
  out[o + 5] = 0x3a;
  out[o + 6] = 0x30 + ((s / 10) | 0);
  out[o + 7] = 0x30 + (s % 10);
  out[o + 8] = 0x2e; // .
  out[o + 9] = 0x30 + ((r / 100) | 0);
  out[o + 10] = 0x30 + (((r / 10) | 0) % 10);
  out[o + 11] = 0x30 + (r % 10);
  out[o + 12] = 0x5a; // Z
  return o + 13;
}

/** A bucket value as it is written: JSON has no NaN or Infinity, and JSON.stringify writes them as null. */
export const jsonNumber = (v: number | null): number | null => (v !== null && Number.isFinite(v) ? v : null);
