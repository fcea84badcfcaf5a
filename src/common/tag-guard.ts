/**
 * A look at a JSON body's bytes, before JSON.parse, for a `tags` value past its route's limit.
 * JSON.parse cannot be interrupted, and an object of 100,000 keys (1.3 MB) took it 80-90 ms on a
 * slower machine of ours, 120-160 ms for the whole request to its 400; clients sending such bodies
 * kept the event loop, and `/health`, waiting (bench/frontdoor.bench.ts). Here the bytes are only
 * walked, nothing is built, and the walk stops at the first entry past the limit.
 *
 * It answers where the route would refuse anyway, and names the field as the route does:
 * - ingest (`oversizedTags`): the value of any key `tags` is a point's tags (`metrics[i].tags`,
 *   `batches[j].metrics[i].tags`, the single-point shape's `tags`), and decode.ts refuses more
 *   than INGEST_MAX_TAGS keys in one before it looks at anything else in it;
 * - queries (`oversizedTagFilters`): the value of a key `tags` is a tag filter, an object of
 *   strings or arrays of strings, or an array of `key:value` strings (`queries[i].tags`, `tags`),
 *   and query-spec.ts's parseTags refuses more than MAX_TAG_FILTER_VALUES values in one.
 * Entries are counted as written, so a key repeated in one object counts each time (JSON.parse
 * would keep the last). It is not a validator: on anything it does not follow (bad syntax, nesting
 * deeper than MAX_DEPTH) it answers undefined and the body is parsed as before.
 */

const MAX_DEPTH = 64;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;
const TAGS = Buffer.from('tags');

interface Frame {
  object: boolean;
  /** The current key's bytes (objects). */
  keyStart: number;
  keyEnd: number;
  /** Keys seen (objects) or the current element's index (arrays). */
  count: number;
  /** The value of a key `tags`. */
  tags: boolean;
  /** Entries of a `tags` value counted so far. */
  entries: number;
}

/** Ingest: the field of the first `tags` object with more than `maxTags` keys, if any. */
export function oversizedTags(body: Buffer, maxTags: number): string | undefined {
  return firstOversized(body, maxTags, false);
}

/** Queries: the field of the first `tags` filter with more than `maxValues` string values, if any. */
export function oversizedTagFilters(body: Buffer, maxValues: number): string | undefined {
  return firstOversized(body, maxValues, true);
}

/**
 * Counts the keys of `tags` objects, or (`values`) the strings that are values in a `tags` object
 * or array or in an array directly under a `tags` object.
 */
function firstOversized(body: Buffer, max: number, values: boolean): string | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  for (let p = 0; p < body.length; p++) {
    const c = body[p];
    if (c === QUOTE) {
      const start = p + 1;
      p = stringEnd(body, start);
      if (p < 0) return undefined;
      const depth = stack.length - 1;
      const top = stack[depth];
      if (top?.object && expectKey) {
        top.keyStart = start;
        top.keyEnd = p;
        expectKey = false;
        if (!values && top.tags && ++top.entries > max) return fieldOf(body, stack, depth);
      } else if (values && top !== undefined) {
        // A value: counted by the `tags` frame holding it, itself or the object above an array.
        const at = top.tags ? depth : !top.object && depth > 0 && stack[depth - 1].tags ? depth - 1 : -1;
        if (at >= 0 && ++stack[at].entries > max) return fieldOf(body, stack, at);
      }
    } else if (c === LBRACE || c === LBRACKET) {
      if (stack.length >= MAX_DEPTH) return undefined;
      const parent = stack[stack.length - 1];
      const object = c === LBRACE;
      const tags =
        (object || values) && parent !== undefined && parent.object && isTagsKey(body, parent.keyStart, parent.keyEnd);
      stack.push({ object, keyStart: 0, keyEnd: 0, count: 0, tags, entries: 0 });
      expectKey = object;
    } else if (c === RBRACE || c === RBRACKET) {
      stack.pop();
      expectKey = false;
    } else if (c === COMMA) {
      const top = stack[stack.length - 1];
      if (top === undefined) return undefined;
      if (top.object) expectKey = true;
      else top.count++;
    } else if (c === COLON) {
      expectKey = false;
    }
  }
  return undefined;
}

/** The index of the closing quote of the string whose text starts at `p`, or -1. */
function stringEnd(b: Buffer, p: number): number {
  for (; p < b.length; p++) {
    const c = b[p];
    if (c === QUOTE) return p;
    if (c === BACKSLASH) p++;
  }
  return -1;
}

/** Whether the key's text is `tags`. */
function isTagsKey(b: Buffer, start: number, end: number): boolean {
  if (end - start === 4) return b.compare(TAGS, 0, 4, start, end) === 0;
  // Otherwise only an escaped `tags` (at most `\u0074\u0061\u0067\u0073`, 24 bytes) reads as `tags`.
  return end - start <= 24 && b.subarray(start, end).includes(BACKSLASH) && keyText(b, start, end) === 'tags';
}

/** A key's text: its bytes, or JSON's reading of them when they hold an escape. */
function keyText(b: Buffer, start: number, end: number): string | undefined {
  if (!b.subarray(start, end).includes(BACKSLASH)) return b.toString('utf8', start, end);
  try {
    return JSON.parse(b.toString('utf8', start - 1, end + 1)) as string;
  } catch {
    return undefined;
  }
}

/** The route's name of the value at `stack[at]`: `metrics[0].tags`, `batches[1].metrics[0].tags`, `tags`. */
function fieldOf(b: Buffer, stack: readonly Frame[], at: number): string {
  let field = '';
  for (let i = 0; i < at; i++) {
    const f = stack[i];
    if (f.object) {
      const key = keyText(b, f.keyStart, f.keyEnd) ?? b.toString('utf8', f.keyStart, f.keyEnd);
      field = field === '' ? key : `${field}.${key}`;
    } else field += `[${f.count}]`;
  }
  return field;
}
