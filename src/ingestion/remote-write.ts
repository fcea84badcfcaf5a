import protobuf from 'protobufjs';
import snappy from 'snappyjs';
import { ApiError, invalidRequest } from '../common/errors.js';
import type { PointBatch } from '../storage/point-batch.js';
import { PointCollector, ValidatedSeries } from './collect.js';
import { DecodeContext, isStorableValue } from './decode.js';

/**
 * Prometheus remote write 1.0 (`POST /api/v1/write`): a snappy block-compressed protobuf
 * `prometheus.WriteRequest` → one PointBatch. Pure: no NestJS, no database.
 *
 * The messages are those of prometheus/prometheus `prompb/types.proto` and `remote.proto`
 * (Apache-2.0), written out here with only the fields Timescope reads; field numbers and types are
 * the wire format of the remote write 1.0 specification. Exemplars (TimeSeries field 3) and metadata
 * (WriteRequest field 3) are skipped unread; native histograms (field 4) are counted, not stored.
 */
const PROMPB = `
syntax = "proto3";
package prometheus;
message WriteRequest { repeated TimeSeries timeseries = 1; }
message TimeSeries {
  repeated Label labels = 1;
  repeated Sample samples = 2;
  repeated bytes histograms = 4;
}
message Label { string name = 1; string value = 2; }
message Sample { fixed64 value = 1; int64 timestamp = 2; }
`;
// Sample.value is a double on the wire; it is read as its 64 bits (fixed64, the same wire type) so
// that the staleness marker's NaN payload survives: V8 may canonicalise a NaN once it is a number.

const WriteRequest = protobuf.parse(PROMPB, { keepCase: false }).root.lookupType('prometheus.WriteRequest');

interface RwLabel {
  name: string;
  value: string;
}
interface Bits {
  low: number;
  high: number;
}
interface RwSample {
  /** A Long (protobufjs decodes 64-bit fields with its dependency long). */
  value: Bits;
  timestamp: number | { toNumber(): number };
}
interface RwSeries {
  labels: RwLabel[];
  samples: RwSample[];
  histograms: Uint8Array[];
}

/** Points not stored, by why. None of them makes the request fail. */
export interface RemoteWriteSkipped {
  /** Prometheus' staleness markers (NaN 0x7ff0000000000002): "this series ended", not a value. */
  stale: number;
  /** NaN and ±Inf samples: Timescope stores finite values only. */
  non_finite: number;
  /** Finite values beyond ±MAX_ABS_VALUE, which rollups could not sum. */
  out_of_range: number;
  /** Native histogram samples (an experimental feature of Prometheus 2.40+, off by default). */
  native_histogram: number;
}

export interface RemoteWriteResult {
  batch: PointBatch;
  skipped: RemoteWriteSkipped;
}

/** The label whose value becomes the source of a series; `job` and `instance` stay tags as well. */
export const SOURCE_LABEL = 'job';
/** The source of series without a `job` label (recording rules, federation without job). */
export const DEFAULT_SOURCE = 'prometheus';

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
/** Prometheus' staleness marker, by its bits (value.StaleNaN in Prometheus). */
const isStaleMarker = (b: Bits) => b.low >>> 0 === 0x00000002 && b.high >>> 0 === 0x7ff00000;
/** The double whose IEEE-754 bits these are (little-endian platforms, as Node.js runs on). */
function toDouble(b: Bits): number {
  u32[0] = b.low;
  u32[1] = b.high;
  return f64[0];
}

/**
 * Why a remote write body's Content-Encoding is refused (a 415), or undefined for snappy (content
 * codings are case-insensitive, RFC 9110) or none. Checked before the body is read.
 */
export function remoteWriteEncodingProblem(encoding: string | undefined): string | undefined {
  if (encoding === undefined || encoding.toLowerCase() === 'snappy') return undefined;
  return `Remote write bodies are snappy-compressed (Content-Encoding: snappy), not ${encoding}`;
}

/** The snappy block (not framed) body → the protobuf bytes, at most `maxBytes` of them. */
export function unsnappy(body: Buffer, maxBytes: number): Buffer {
  let length: number;
  try {
    length = uncompressedLength(body);
  } catch (err) {
    throw invalidRequest(
      `Remote write body is not snappy block-compressed data (Content-Encoding: snappy): ${(err as Error).message}`,
      { field: 'body' },
    );
  }
  if (length > maxBytes) {
    throw new ApiError(
      413,
      'PAYLOAD_TOO_LARGE',
      `Remote write body decompresses to ${length} bytes, more than ${maxBytes} (INGEST_MAX_BODY_BYTES); lower queue_config.max_samples_per_send`,
      {
        limit: 'INGEST_MAX_BODY_BYTES',
        bytes: length,
      },
    );
  }
  try {
    return Buffer.from(snappy.uncompress(body, maxBytes));
  } catch (err) {
    throw invalidRequest(`Remote write body is not valid snappy block-compressed data: ${(err as Error).message}`, {
      field: 'body',
    });
  }
}

/** The varint length that starts a snappy block, read before anything is allocated. */
function uncompressedLength(b: Buffer): number {
  let result = 0;
  for (let i = 0, shift = 1; i < 5; i++, shift *= 128) {
    if (i >= b.length) throw new Error('the body ends inside its length header');
    const c = b[i];
    result += (c & 0x7f) * shift;
    if (c < 0x80) return result;
  }
  throw new Error('its length header is longer than 5 bytes');
}

/**
 * A decompressed WriteRequest → points. Each series: `__name__` → metric, the `job` label → source
 * (`prometheus` without one), every other label → a tag (`job` and `instance` included; a label
 * with an empty value is no label, as in Prometheus). Samples carry ms timestamps. Stale markers,
 * other NaNs, infinities and native histograms are skipped and counted; everything else follows
 * the JSON path's rules, and one bad series or sample refuses the whole request (400).
 */
export function decodeRemoteWrite(
  protobufBytes: Uint8Array,
  ctx: DecodeContext,
  validated?: ValidatedSeries,
): RemoteWriteResult {
  let req: { timeseries: RwSeries[] };
  try {
    req = WriteRequest.decode(protobufBytes) as unknown as { timeseries: RwSeries[] };
  } catch (err) {
    throw invalidRequest(`Remote write body is not a protobuf prometheus.WriteRequest: ${(err as Error).message}`, {
      field: 'body',
    });
  }
  const all = req.timeseries;
  let total = 0;
  for (const ts of all) total += ts.samples.length;
  const c = new PointCollector(ctx, total, validated); // 413 past INGEST_MAX_POINTS_PER_REQUEST, before any work
  const skipped: RemoteWriteSkipped = { stale: 0, non_finite: 0, out_of_range: 0, native_histogram: 0 };
  for (let i = 0; i < all.length && !c.full; i++) {
    const ts = all[i];
    skipped.native_histogram += ts.histograms.length;
    const samples = ts.samples;
    const values = new Float64Array(samples.length);
    let storable = 0;
    for (let j = 0; j < samples.length; j++) {
      const bits = samples[j].value;
      const v = (values[j] = toDouble(bits));
      if (isStorableValue(v)) storable++;
      else if (Number.isFinite(v)) skipped.out_of_range++;
      else if (isStaleMarker(bits)) skipped.stale++;
      else skipped.non_finite++;
    }
    if (storable === 0) continue; // a series is made by a value, not by a label set
    let name: string | undefined;
    let source = DEFAULT_SOURCE;
    const tags: Array<[string, string]> = [];
    for (const l of ts.labels) {
      if (l.name === '__name__') name = l.value;
      else if (l.value !== '') {
        if (l.name === SOURCE_LABEL) source = l.value;
        tags.push([l.name, l.value]);
      }
    }
    if (name === undefined || name === '') {
      c.problem(`timeseries[${i}].labels`, 'has no __name__ label (the metric name)');
      continue;
    }
    const idx = c.series(name, source, tags, null, () => `timeseries[${i}].labels`);
    if (idx === undefined) continue;
    for (let j = 0; j < samples.length; j++) {
      const v = values[j];
      if (!isStorableValue(v)) continue;
      const ts = samples[j].timestamp;
      const t = typeof ts === 'number' ? ts : ts.toNumber();
      c.point(idx, t, v, () => `timeseries[${i}].samples[${j}].timestamp (${t} ms)`);
    }
  }
  return { batch: c.finish(), skipped };
}

/** Remote write 2.0 announces itself in the Content-Type (`proto=io.prometheus.write.v2.Request`) and a version header. */
export function remoteWriteVersionProblem(
  contentType: string | undefined,
  versionHeader: string | undefined,
): string | undefined {
  const proto = /;\s*proto=([^;\s]+)/i.exec(contentType ?? '')?.[1];
  if (proto !== undefined && proto !== 'prometheus.WriteRequest')
    return `proto=${proto} is not supported: Timescope takes remote write 1.0 (prometheus.WriteRequest)`;
  if (versionHeader !== undefined && !versionHeader.startsWith('0.1'))
    return `X-Prometheus-Remote-Write-Version ${versionHeader} is not supported: Timescope takes remote write 1.0 (0.1.0)`;
  return undefined;
}
