/**
 * A look at a JSON body's bytes, before JSON.parse, for a `tags` value past its route's limit.
 * JSON.parse cannot be interrupted, and an object of 100,000 keys (1.3 MB) took it 80-90 ms on a
 * slower machine of ours, 120-160 ms for the whole request to its 400; clients sending such bodies
 * kept the event loop, and `/health`, waiting (bench/frontdoor.bench.ts). Here the bytes are only
 * walked (about 4 ms a MB), and nothing is built but the first keys of a `tags` object.
 *
 * It names a field only where the route, given the parsed body, refuses it anyway:
 * - ingest (`oversizedTags`): a point's tags, where decode.ts reads them (`metrics[i].tags`,
 *   `batches[j].metrics[i].tags`, and the single-point shape's `tags` when the object is that
 *   shape), with more distinct keys than INGEST_MAX_TAGS, which decode.ts refuses before it looks
 *   at anything else in them; not when the body has more points than INGEST_MAX_POINTS_PER_REQUEST
 *   (the route answers 413 for that first);
 * - queries (`oversizedTagFilters`): a tag filter where the route reads it (`queries[i].tags` on
 *   /query/multi, `tags` on /anomalies and /exports) that query-spec.ts's parseTags refuses for
 *   its size: more than MAX_TAG_FILTER_VALUES keys, an array form or an array of values longer
 *   than that with every value before it well formed, or more values in all with every one well
 *   formed.
 * Where the route would meet another problem first (a bad `from`, a bad point name), the answer
 * names the tags instead; the body is refused either way.
 *
 * JSON.parse keeps the last of a repeated key, so a body that repeats one of the keys on those
 * paths (`metrics`, `batches`, `queries`, `tags`, `source`, `service`, `metric_type`) in one
 * object, or a key within a point's tags or a tag filter, is left to the route; so is a filter
 * whose array-index keys (which JavaScript visits first) could change which problem parseTags
 * meets first, and anything the walk does not follow (an unterminated string or structure,
 * nesting deeper than MAX_DEPTH). It does not check the rest of the syntax: a broken body with
 * such a field gets that field's 400 rather than the syntax error's.
 */

import { BACKSLASH, COLON, COMMA, LBRACE, LBRACKET, QUOTE, RBRACE, RBRACKET } from './json-bytes.js';

const MAX_DEPTH = 64;

/** The keys that decide where tags are read, as bits of a set. */
const KEYS = ['metrics', 'batches', 'queries', 'tags', 'source', 'service', 'metric_type'] as const;
type Key = (typeof KEYS)[number];
const BIT = Object.fromEntries(KEYS.map((k, i) => [k, 1 << i])) as Record<Key, number>;
const KEY_BYTES = KEYS.map((k) => Buffer.from(k));

/** Ingest bodies by shape, and query bodies by where their filter is. */
export type IngestShape = 'submission' | 'batches' | 'app';
export type FilterShape = 'multi' | 'single';

/** Where each route reads tags, as paths of known keys (`[]`: any element of an array). */
const READ_AT: Record<IngestShape | FilterShape, readonly string[]> = {
  submission: ['.metrics[].tags', '.tags'],
  batches: ['.batches[].metrics[].tags', '.batches[].tags'],
  app: ['.metrics[].tags'],
  multi: ['.queries[].tags'],
  single: ['.tags'],
};

/** One `tags` value on a path its route reads. */
interface Tags {
  path: string;
  /** Keys written; their spans while they are few (ingest: distinct keys only matter past the limit). */
  written: number;
  spans: number[] | undefined;
  /** Distinct keys, once they matter (filters: always, to tell a repeated key), until past the limit or a repeat. */
  keys: Set<string> | undefined;
  /** More distinct keys than the limit. */
  tooManyKeys: boolean;
  /**
   * A key given twice (its count and values are left to JSON.parse and the route); filters: a key
   * that JavaScript puts first (an array index: `Object.entries` visits those before the others,
   * so the document's order is not parseTags's), a value that parseTags refuses for its form,
   * values in all.
   */
  repeated: boolean;
  reordered: boolean;
  malformed: boolean;
  values: number;
  /** Filters: an array (the value list, or the whole filter) past the limit, with every value before it well formed. */
  longArray: boolean;
}

interface Frame {
  object: boolean;
  /** Objects: the current key's bit (0 for any other key), and the keys seen. */
  key: number;
  seen: number;
  /** Arrays: commas seen, and whether a value has started. */
  commas: number;
  started: boolean;
  /** The path of known keys that leads here, or undefined once off them. */
  path: string | undefined;
  /** Arrays: the path of their elements, made once. */
  elements: string | undefined;
  /** This value is a `tags` value its route reads. */
  tags: Tags | undefined;
  /** Filters: this array is the value of a key of the filter `of`; `strings` while every element is a string. */
  of: Tags | undefined;
  strings: boolean;
  /** Objects: the `tags` value of this object's key `tags` (a second such key gives up), decided when it closes. */
  pending: Tags | undefined;
}

/** Ingest: the field of the first point whose tags decode.ts refuses for their number, if any. */
export function oversizedTags(
  body: Buffer,
  shape: IngestShape,
  limits: { maxTags: number; maxPoints: number },
): string | undefined {
  return walk(body, shape, limits.maxTags, limits.maxPoints);
}

/** Queries: the field of the first tag filter parseTags refuses for its size, if any. */
export function oversizedTagFilters(body: Buffer, shape: FilterShape, maxValues: number): string | undefined {
  return walk(body, shape, maxValues, Infinity);
}

function walk(body: Buffer, shape: IngestShape | FilterShape, max: number, maxPoints: number): string | undefined {
  const filters = shape === 'multi' || shape === 'single';
  const readAt = READ_AT[shape];
  const stack: Frame[] = [];
  let refused: string | undefined;
  let points = 0;
  let expectKey = false;
  for (let p = 0; p < body.length; p++) {
    const c = body[p];
    const top = stack[stack.length - 1];
    if (c === QUOTE) {
      const start = p + 1;
      p = stringEnd(body, start);
      if (p < 0) return undefined;
      if (top === undefined) continue;
      if (top.object && expectKey) {
        expectKey = false;
        if (top.tags) {
          countKey(top.tags, body, start, p, max, filters);
          continue;
        }
        if (top.path === undefined) continue; // off the paths to tags: its keys do not matter
        const bit = keyBit(body, start, p);
        if (bit !== 0 && (top.seen & bit) !== 0) return undefined; // JSON.parse would keep the last
        top.seen |= bit;
        top.key = bit;
      } else {
        value(top, filters, 'string');
      }
    } else if (c === LBRACE || c === LBRACKET) {
      if (top !== undefined) value(top, filters, c === LBRACE ? 'object' : 'array');
      if (stack.length >= MAX_DEPTH) return undefined;
      const object = c === LBRACE;
      const path = top === undefined ? '' : pathOf(top);
      const frame: Frame = {
        object,
        key: 0,
        seen: 0,
        commas: 0,
        started: false,
        path,
        elements: undefined,
        tags: undefined,
        of: undefined,
        strings: true,
        pending: undefined,
      };
      if (top !== undefined && path !== undefined && readAt.includes(path) && (object || filters)) {
        const tags: Tags = {
          path,
          written: 0,
          spans: object && !filters ? [] : undefined,
          keys: object && filters ? new Set() : undefined,
          tooManyKeys: false,
          repeated: false,
          reordered: false,
          malformed: false,
          values: 0,
          longArray: false,
        };
        frame.tags = tags;
        top.pending = tags;
      } else if (filters && top?.tags && top.object && !object) frame.of = top.tags;
      stack.push(frame);
      expectKey = object;
    } else if (c === RBRACE || c === RBRACKET) {
      const frame = stack.pop();
      if (frame === undefined || frame.object !== (c === RBRACE)) return undefined;
      expectKey = false;
      if (!frame.object) {
        const n = frame.started ? frame.commas + 1 : 0;
        if (frame.path === '.metrics' || frame.path === '.batches[].metrics') points += n;
        if (frame.tags && n > max) frame.tags.longArray = true; // the array form of a filter
        if (frame.of) closeValues(frame.of, n, frame.strings, max);
      } else if (frame.pending && refused === undefined) {
        // Objects close in document order, the points of one array and the batches of another alike.
        const tags = frame.pending;
        if (readHere(shape, tags.path, frame.seen) && isRefused(tags, max))
          refused = stack.length === 0 ? 'tags' : `${fieldOf(stack)}.tags`;
      }
    } else if (c === COMMA) {
      if (top === undefined) return undefined;
      if (top.object) expectKey = true;
      else top.commas++;
    } else if (c === COLON) {
      expectKey = false;
    } else if (c > 0x20) {
      // A number, true, false or null: one value, its characters skipped.
      if (top !== undefined) value(top, filters, 'literal');
      while (p + 1 < body.length && isLiteral(body[p + 1])) p++;
    }
  }
  if (stack.length > 0 || points > maxPoints) return undefined;
  return refused;
}

/** Whether `c` may go on a number or a literal (anything but whitespace, quotes and structure). */
function isLiteral(c: number): boolean {
  return (
    c > 0x20 &&
    c !== COMMA &&
    c !== RBRACE &&
    c !== RBRACKET &&
    c !== COLON &&
    c !== QUOTE &&
    c !== LBRACE &&
    c !== LBRACKET
  );
}

/** A value starts in `top`: what it means for the array or filter it is in. */
function value(top: Frame, filters: boolean, kind: 'string' | 'object' | 'array' | 'literal'): void {
  if (!top.object) {
    top.started = true;
    if (kind !== 'string') top.strings = false;
  }
  const tags = top.tags;
  if (!filters || tags === undefined) return;
  if (top.object) {
    if (kind === 'string') tags.values++;
    else if (kind !== 'array') tags.malformed = true; // a number or an object as a filter's value
  } else if (kind !== 'string') tags.malformed = true; // the array form holds `key:value` strings
}

/** Filters: an array of values closed, `n` elements long. parseTags checks its length before its elements. */
function closeValues(tags: Tags, n: number, strings: boolean, max: number): void {
  if (n > max && !tags.malformed) tags.longArray = true;
  if (n === 0 || !strings) tags.malformed = true;
  tags.values += n;
}

function countKey(tags: Tags, b: Buffer, start: number, end: number, max: number, filters: boolean): void {
  if (tags.tooManyKeys || tags.repeated) return; // decided, or left to the route
  tags.written++;
  if (tags.spans !== undefined) {
    // Ingest: as long as no more keys than the limit are written, no more are distinct.
    tags.spans.push(start, end);
    if (tags.written <= max) return;
    tags.keys = new Set();
    for (let i = 0; i < tags.spans.length; i += 2) addKey(tags, b, tags.spans[i], tags.spans[i + 1], max, filters);
    tags.spans = undefined;
    return;
  }
  addKey(tags, b, start, end, max, filters);
}

function addKey(tags: Tags, b: Buffer, start: number, end: number, max: number, filters: boolean): void {
  const keys = tags.keys;
  if (keys === undefined || tags.tooManyKeys || tags.repeated) return;
  const key = keyText(b, start, end) ?? `\u0000${b.toString('latin1', start, end)}`;
  if (keys.has(key)) {
    // Undecided as yet: how many distinct keys follow is left to JSON.parse and the route.
    tags.repeated = true;
    tags.keys = undefined;
    return;
  }
  keys.add(key);
  if (filters && ARRAY_INDEX.test(key)) tags.reordered = true;
  if (keys.size > max) {
    tags.tooManyKeys = true;
    tags.keys = undefined;
  }
}

/** A key that JavaScript keeps as an array index (up to 2^32 - 2), ahead of the other keys. */
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;

/**
 * Whether parseTags or decode.ts refuses this tags value for its size. A key given twice in a
 * filter leaves its values to JSON.parse (the last one stays, in the first one's place).
 */
function isRefused(tags: Tags, max: number): boolean {
  if (tags.tooManyKeys) return true;
  if (tags.repeated) return false;
  // A long array is refused as such if every value parseTags visits before it is well formed: in
  // the document's order, or in any order when none is malformed.
  if (tags.longArray && (!tags.reordered || !tags.malformed)) return true;
  return !tags.malformed && tags.values > max;
}

/** Whether the route reads a `tags` value at `path` in an object with these keys (the single-point shapes). */
function readHere(shape: IngestShape | FilterShape, path: string, seen: number): boolean {
  if (shape === 'submission' && path === '.tags')
    return (seen & (BIT.metrics | BIT.source)) === 0 && (seen & (BIT.service | BIT.metric_type)) !== 0;
  if (shape === 'batches' && path === '.batches[].tags')
    return (seen & BIT.metric_type) !== 0 && (seen & BIT.metrics) === 0;
  return true;
}

/** The path of known keys to the value now starting in `top`. */
function pathOf(top: Frame): string | undefined {
  if (top.path === undefined) return undefined;
  if (!top.object) return (top.elements ??= `${top.path}[]`);
  const i = 31 - Math.clz32(top.key);
  return top.key === 0 ? undefined : `${top.path}.${KEYS[i]}`;
}

/** The route's name of the value now starting: `metrics[0].tags`, `batches[1].metrics[0].tags`, `tags`. */
function fieldOf(stack: readonly Frame[]): string {
  let field = '';
  for (const f of stack) {
    if (f.object) {
      const key = KEYS[31 - Math.clz32(f.key)];
      field = field === '' ? key : `${field}.${key}`;
    } else field += `[${f.commas}]`;
  }
  return field;
}

/** The index of the closing quote of the string whose text starts at `p`, or -1. */
function stringEnd(b: Buffer, p: number): number {
  for (;;) {
    const q = b.indexOf(QUOTE, p);
    if (q < 0) return -1;
    let backslashes = 0;
    while (q - backslashes - 1 >= p && b[q - backslashes - 1] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q;
    p = q + 1;
  }
}

/**
 * The bit of a known key, or 0. A known key written with escapes (`t\u0061gs`, at least 9 bytes)
 * is compared escape by escape: its characters are letters and `_`, so only `\u` escapes can
 * spell them.
 */
function keyBit(b: Buffer, start: number, end: number): number {
  const n = end - start;
  for (let i = 0; i < KEYS.length; i++)
    if (KEY_BYTES[i].length === n && sameBytes(b, start, KEY_BYTES[i])) return 1 << i;
  if (n < 9 || n > 66 || !hasBackslash(b, start, end)) return 0;
  for (let i = 0; i < KEYS.length; i++) if (spells(b, start, end, KEY_BYTES[i])) return 1 << i;
  return 0;
}

/** Whether the key text in [start, end), its `\u` escapes read, is `key` (ASCII). */
function spells(b: Buffer, start: number, end: number, key: Buffer): boolean {
  let p = start;
  for (let j = 0; j < key.length; j++) {
    if (p >= end) return false;
    if (b[p] !== BACKSLASH) {
      if (b[p++] !== key[j]) return false;
      continue;
    }
    if (b[p + 1] !== 0x75 || p + 6 > end) return false; // \n, \", \/ … spell no letter
    let code = 0;
    for (let k = p + 2; k < p + 6; k++) {
      const h = hex(b[k]);
      if (h < 0) return false;
      code = code * 16 + h;
    }
    if (code !== key[j]) return false;
    p += 6;
  }
  return p === end;
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function sameBytes(b: Buffer, start: number, key: Buffer): boolean {
  for (let i = 0; i < key.length; i++) if (b[start + i] !== key[i]) return false;
  return true;
}

/** A key's text: its bytes, or JSON's reading of them when they hold an escape. */
function keyText(b: Buffer, start: number, end: number): string | undefined {
  if (!hasBackslash(b, start, end)) return b.toString('utf8', start, end);
  try {
    return JSON.parse(b.toString('utf8', start - 1, end + 1)) as string;
  } catch {
    return undefined;
  }
}

function hasBackslash(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === BACKSLASH) return true;
  return false;
}
