import avro from 'avsc';
import snappy from 'snappyjs';
import { isUtf8 } from 'node:buffer';
import { crc32, inflateRawSync } from 'node:zlib';
import { ApiError, invalidRequest } from '../common/errors.js';
import type { PointBatch } from '../storage/point-batch.js';
import { decodeAppMetrics, DecodeContext, tooManyPoints } from './decode.js';

/**
 * Avro bodies of `POST /api/v2/app/{app_id}/metrics` (metrics-collection-api-v2.md) → one
 * PointBatch through the JSON body's own decoder (decodeAppMetrics), so both encodings of that
 * route map and validate alike. Pure: no NestJS, no database.
 *
 * Two forms, told apart by their first bytes:
 * - an Avro object container file (`Obj\x01` …): its own writer schema, any number of blocks,
 *   codec null, deflate or snappy; the writer schema is resolved against METRIC_SCHEMA (Avro schema
 *   resolution: extra fields are skipped, fields with defaults may be missing, int → long → double
 *   promotions apply), so a producer's evolved schema still reads;
 * - the bare binary encoding of an array of Metric records (`{"type": "array", "items": Metric}`,
 *   the same bytes as a record `{metrics: array<Metric>}`, the JSON body's shape), written with
 *   METRIC_SCHEMA itself: one metric is an array of one.
 */

/** The reference's schema (metrics-collection-api-v2.md, `schemas/metric.avsc`), as written there. */
export const METRIC_SCHEMA = {
  type: 'record',
  name: 'Metric',
  namespace: 'com.metrics.collection',
  fields: [
    { name: 'name', type: 'string', doc: 'Name of the metric' },
    { name: 'value', type: 'double', doc: 'Value of the metric' },
    { name: 'timestamp', type: 'long', doc: 'Unix timestamp in milliseconds' },
    { name: 'tags', type: { type: 'map', values: 'string' }, default: {}, doc: 'Additional metric tags' },
    { name: 'profileId', type: 'string', doc: 'Profile identifier' },
  ],
} as const;

export const metricType = avro.Type.forSchema(METRIC_SCHEMA as unknown as avro.Schema);
const longType = avro.Type.forSchema('long');
const headerType = avro.Type.forSchema({
  type: 'record',
  name: 'Header',
  namespace: 'org.apache.avro.file',
  fields: [
    { name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
    { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } },
  ],
});
const MAGIC = Buffer.from('Obj\x01', 'latin1');

/** The Content-Types of Avro bodies: `avro/binary` (the Avro specification's HTTP transport) and `application/avro`. */
export const AVRO_CONTENT_TYPES = ['avro/binary', 'application/avro'];

const bad = (message: string, details: Record<string, unknown> = {}) =>
  invalidRequest(`Avro body: ${message}`, { field: 'body', format: 'avro', ...details });

/** An Avro body (either form) → the records it holds, at most INGEST_MAX_POINTS_PER_REQUEST of them. */
export function readAvroMetrics(body: Buffer, ctx: Pick<DecodeContext, 'limits'>, maxDecodedBytes: number): unknown[] {
  if (body.length === 0) throw bad('the body is empty');
  const bytes: Buffer[] = []; // each record's own bytes (views, not copies)
  const container = body.length >= 4 && body.subarray(0, 4).equals(MAGIC);
  const read = container ? readContainer(body, ctx, maxDecodedBytes, bytes) : readArray(body, ctx, bytes);
  refuseReplacedText(read.records, bytes, read.writer);
  return read.records;
}

const REPLACEMENT = '\uFFFD';

/**
 * Avro strings are UTF-8, and avsc decodes bytes that are not as U+FFFD (tag values differing only
 * there would become one series). A record whose decoded strings hold U+FFFD (rare: the check
 * costs nothing otherwise) has its own bytes walked as the writer's schema lays them out, and a
 * string there that is not valid UTF-8 is a 400 naming its field, as for JSON. A U+FFFD sent as
 * such (EF BF BD) is valid text and stays.
 */
function refuseReplacedText(records: unknown[], bytes: Buffer[], writer: avro.Type): void {
  const text = (s: unknown) => typeof s === 'string' && s.includes(REPLACEMENT);
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as { name?: unknown; profileId?: unknown; tags?: Record<string, unknown> };
    const replaced =
      text(r.name) || text(r.profileId) || (r.tags && Object.entries(r.tags).some(([k, v]) => text(k) || text(v)));
    if (!replaced) continue;
    const field = invalidText(writer, bytes[i]);
    if (field === undefined) continue;
    throw invalidRequest(`metrics[${i}].${field}: is not valid UTF-8`, {
      field: `metrics[${i}].${field}`,
      format: 'avro',
    });
  }
}

/**
 * The field of METRIC_SCHEMA that holds the first string of `buf` (one record of `type`, the
 * writer's schema, in Avro's binary encoding) that is not valid UTF-8, or undefined when there is
 * none. Map keys are strings too; fields the Metric schema does not read are skipped, not judged.
 */
export function invalidText(type: avro.Type, buf: Buffer): string | undefined {
  let pos = 0;
  let invalid: boolean; // whether the field being walked holds invalid text
  const text = (s: number, e: number) => {
    if (!isUtf8(buf.subarray(s, e))) invalid = true;
  };
  for (const f of (type as unknown as { fields: Array<{ name: string; type: avro.Type }> }).fields) {
    invalid = false;
    pos = walk(f.type, buf, pos, text);
    if (invalid && READ_FIELDS.has(f.name)) return f.name;
  }
  return undefined;
}

/** Thrown by walk: the bytes end inside the value, or a block claims more items than bytes are left. */
const UNREADABLE = new Error('avro: unreadable value');

/**
 * Where the value of `type` (a writer's schema) that starts at `start` in `buf` ends; `text` sees
 * the span of every string (map keys too). Throws UNREADABLE when the bytes end first, a union
 * branch does not exist, or an array or map block claims more items than there are bytes left:
 * avsc loops over such a count whatever the body holds, and a 20-byte body claiming 2^40 tags
 * kept the service busy for good. Run before avsc decodes a value.
 */
function walk(
  type: avro.Type,
  buf: Buffer,
  start: number,
  text?: (s: number, e: number, mapKey: boolean) => void,
): number {
  let pos = start;
  const long = (): number => {
    const r = longType.decode(buf, pos);
    if (r.offset < 0) throw UNREADABLE;
    pos = r.offset;
    return r.value as number;
  };
  const skip = (n: number) => {
    if (!(n >= 0) || pos + n > buf.length) throw UNREADABLE;
    pos += n;
  };
  const string = (mapKey = false) => {
    const n = long(); // not `skip(long())` inline with pos: the length comes first
    const s = pos;
    skip(n);
    text?.(s, pos, mapKey);
  };
  // The blocks of an array or a map; `item` reads one item.
  const blocks = (item: () => void) => {
    for (let count = long(); count !== 0; count = long()) {
      if (count < 0) {
        count = -count;
        long(); // the block's size in bytes
      }
      if (count > buf.length - pos) throw UNREADABLE;
      for (let i = 0; i < count; i++) item();
    }
  };
  const value = (t: avro.Type): void => {
    const any = t as unknown as {
      typeName: string;
      underlyingType?: avro.Type;
      fields?: Array<{ type: avro.Type }>;
      valuesType?: avro.Type;
      itemsType?: avro.Type;
      types?: avro.Type[];
      size?: number;
    };
    if (any.underlyingType) return value(any.underlyingType); // a logical type
    switch (any.typeName) {
      case 'string':
        return string();
      case 'bytes':
        return skip(long());
      case 'int':
      case 'long':
      case 'enum':
        long();
        return;
      case 'float':
        return skip(4);
      case 'double':
        return skip(8);
      case 'boolean':
        return skip(1);
      case 'null':
        return;
      case 'fixed':
        return skip(any.size ?? 0);
      case 'record':
      case 'error':
        return (any.fields ?? []).forEach((f) => value(f.type));
      case 'array':
        return blocks(() => value(any.itemsType!));
      case 'map':
        return blocks(() => {
          string(true);
          value(any.valuesType!);
        });
      default: {
        // a union: the branch's index, then its value
        const branch = any.types?.[long()];
        if (branch === undefined) throw UNREADABLE;
        return value(branch);
      }
    }
  };
  value(type);
  return pos;
}

const PROTO = Buffer.from('__proto__');

/**
 * Whether record `index`, one value of `type` (a record schema) at `pos`, can be read (walk): else
 * avsc must not be given it. A `tags` key `__proto__` is a 400, as in JSON bodies: avsc's map
 * object would drop it without a word (assigning a string to `__proto__` does nothing).
 */
function readable(type: avro.Type, buf: Buffer, pos: number, index: number): boolean {
  const fields = (type as unknown as { fields?: Array<{ name: string; type: avro.Type }> }).fields;
  try {
    if (!fields) {
      walk(type, buf, pos);
      return true;
    }
    for (const f of fields) {
      const tags = f.name === 'tags';
      pos = walk(f.type, buf, pos, (s, e, mapKey) => {
        if (tags && mapKey && e - s === PROTO.length && buf.subarray(s, e).equals(PROTO))
          throw invalidRequest(
            `metrics[${index}].tags.__proto__: a tag key "__proto__" is refused, as in JSON bodies`,
            {
              field: `metrics[${index}].tags.__proto__`,
              format: 'avro',
            },
          );
      });
    }
    return true;
  } catch (err) {
    if (err === UNREADABLE) return false;
    throw err;
  }
}

const READ_FIELDS: ReadonlySet<string> = new Set(METRIC_SCHEMA.fields.map((f) => f.name));

/** The records of an Avro body for app `appId` → a PointBatch, with the JSON body's rules and error fields (`metrics[3].value`). */
export function decodeAvroMetrics(
  appId: string,
  body: Buffer,
  ctx: DecodeContext,
  maxDecodedBytes: number,
): PointBatch {
  return decodeAppMetrics(appId, { metrics: readAvroMetrics(body, ctx, maxDecodedBytes) }, ctx);
}

function readLong(buf: Buffer, pos: number, what: string): { value: number; offset: number } {
  const r = longType.decode(buf, pos);
  if (r.offset < 0) throw bad(`the body ends inside ${what}`, { offset: pos });
  return r as { value: number; offset: number };
}

/** The records of a body and the type they were written with (the file's schema, or METRIC_SCHEMA). */
interface Read {
  records: unknown[];
  writer: avro.Type;
}

/** Bare binary `array<Metric>`: blocks of `count` records (a negative count is followed by the block's byte size), ended by 0. */
function readArray(buf: Buffer, ctx: Pick<DecodeContext, 'limits'>, bytes: Buffer[]): Read {
  const records: unknown[] = [];
  let pos = 0;
  for (;;) {
    const c = readLong(
      buf,
      pos,
      'an array block count (is this an array of Metric records, or an object container file?)',
    );
    pos = c.offset;
    let count = c.value;
    if (count === 0) break;
    if (count < 0) {
      count = -count;
      pos = readLong(buf, pos, 'an array block size').offset;
    }
    if (records.length + count > ctx.limits.maxPoints) throw tooManyPoints(records.length + count, ctx.limits);
    for (let i = 0; i < count; i++) {
      const r = readable(metricType, buf, pos, records.length)
        ? metricType.decode(buf, pos)
        : { offset: -1, value: undefined };
      if (r.offset < 0)
        throw bad(
          `record ${records.length} is truncated or is not a Metric record (an array of Metric records is expected, or an object container file)`,
          { record: records.length, offset: pos },
        );
      records.push(r.value);
      bytes.push(buf.subarray(pos, r.offset));
      pos = r.offset;
    }
  }
  if (pos !== buf.length)
    throw bad(`${buf.length - pos} bytes follow the end of the array of ${records.length} Metric records`, {
      offset: pos,
    });
  return { records, writer: metricType };
}

/** An object container file: header (magic, metadata with the writer schema and codec, sync marker), then blocks. */
function readContainer(
  buf: Buffer,
  ctx: Pick<DecodeContext, 'limits'>,
  maxDecodedBytes: number,
  bytes: Buffer[],
): Read {
  const h = readable(headerType, buf, 0, -1) ? headerType.decode(buf, 0) : { offset: -1, value: undefined };
  if (h.offset < 0) throw bad('the object container file header is truncated');
  const meta = h.value.meta as Record<string, Buffer>;
  const sync = h.value.sync as Buffer;
  const codec = (meta['avro.codec'] ?? Buffer.from('null')).toString();
  if (codec !== 'null' && codec !== 'deflate' && codec !== 'snappy')
    throw bad(`codec ${JSON.stringify(codec)} is not supported (null, deflate or snappy)`);
  let resolver: ReturnType<typeof metricType.createResolver>;
  let writer: avro.Type;
  try {
    writer = avro.Type.forSchema(JSON.parse((meta['avro.schema'] ?? Buffer.from('')).toString()));
    resolver = metricType.createResolver(writer);
  } catch (err) {
    throw bad(
      `the file's schema cannot be read as the Metric schema (name, value, timestamp, tags, profileId): ${(err as Error).message}`,
    );
  }
  const records: unknown[] = [];
  let decoded = 0;
  let pos = h.offset;
  for (let block = 0; pos < buf.length; block++) {
    const c = readLong(buf, pos, `the record count of block ${block}`);
    const s = readLong(buf, c.offset, `the size of block ${block}`);
    const count = c.value;
    const size = s.value;
    const start = s.offset;
    if (count < 0 || size < 0 || start + size + 16 > buf.length)
      throw bad(`block ${block} is truncated`, { block, offset: pos });
    if (records.length + count > ctx.limits.maxPoints) throw tooManyPoints(records.length + count, ctx.limits);
    if (!buf.subarray(start + size, start + size + 16).equals(sync))
      throw bad(`block ${block} does not end with the file's sync marker`, { block });
    const data = decompress(codec, buf.subarray(start, start + size), maxDecodedBytes - decoded, block);
    decoded += data.length;
    let at = 0;
    for (let i = 0; i < count; i++) {
      const r = readable(writer, data, at, records.length)
        ? metricType.decode(data, at, resolver)
        : { offset: -1, value: undefined };
      if (r.offset < 0) throw bad(`record ${i} of block ${block} is truncated`, { block, record: records.length });
      records.push(r.value);
      bytes.push(data.subarray(at, r.offset));
      at = r.offset;
    }
    if (at !== data.length)
      throw bad(`block ${block} holds ${data.length - at} bytes after its ${count} records`, { block });
    pos = start + size + 16;
  }
  return { records, writer };
}

function decompress(codec: string, data: Buffer, room: number, block: number): Buffer {
  const tooLarge = () =>
    new ApiError(
      413,
      'PAYLOAD_TOO_LARGE',
      `Avro body decompresses to more than ${Math.max(0, room)} more bytes in block ${block} (INGEST_MAX_BODY_BYTES)`,
      { limit: 'INGEST_MAX_BODY_BYTES' },
    );
  if (codec === 'null') return data;
  if (codec === 'deflate') {
    try {
      return inflateRawSync(data, { maxOutputLength: Math.max(1, room) });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge();
      throw bad(`block ${block} is not valid deflate data: ${(err as Error).message}`, { block });
    }
  }
  // snappy: the compressed block, then the CRC-32 of the uncompressed bytes (big-endian).
  if (data.length < 4) throw bad(`block ${block} is too short for snappy data and its checksum`, { block });
  let out: Buffer;
  try {
    out = Buffer.from(snappy.uncompress(data.subarray(0, data.length - 4), room));
  } catch (err) {
    if (/too big/.test((err as Error).message)) throw tooLarge();
    throw bad(`block ${block} is not valid snappy data: ${(err as Error).message}`, { block });
  }
  if (crc32(out) >>> 0 !== data.readUInt32BE(data.length - 4))
    throw bad(`block ${block} fails its snappy CRC-32 check`, { block });
  return out;
}
