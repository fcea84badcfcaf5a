import protobuf from 'protobufjs';
import { invalidRequest } from '../common/errors.js';
import { floorToMicros } from '../common/time.js';
import { isObject, Json } from '../common/input.js';
import type { PointBatch } from '../storage/point-batch.js';
import { PointCollector, ValidatedSeries } from './collect.js';
import { DecodeContext, isStorableValue, MAX_ABS_VALUE } from './decode.js';

/**
 * OTLP/HTTP metrics (`POST /v1/metrics`): an `ExportMetricsServiceRequest` as protobuf or as OTLP
 * JSON → one PointBatch. Pure: no NestJS, no database.
 *
 * The messages are those of open-telemetry/opentelemetry-proto (Apache-2.0: `metrics/v1`,
 * `common/v1`, `resource/v1`, `collector/metrics/v1`), written out here with only the fields
 * Timescope reads; field numbers and types are the OTLP 1.x wire format. Exemplars, scopes,
 * descriptions, metadata, min/max and the exponential histograms' buckets are skipped unread.
 * A protobuf body is decoded and turned into the OTLP JSON shape (lowerCamelCase, 64-bit integers
 * as decimal strings, enums as numbers), so one walker reads both encodings.
 */
const OTLP = `
syntax = "proto3";
package otlp;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1; }
message ExportMetricsPartialSuccess { int64 rejected_data_points = 1; string error_message = 2; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeMetrics { repeated Metric metrics = 2; }
message Metric {
  string name = 1;
  string unit = 3;
  oneof data {
    Gauge gauge = 5;
    Sum sum = 7;
    Histogram histogram = 9;
    ExponentialHistogram exponential_histogram = 10;
    Summary summary = 11;
  }
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message ExponentialHistogram { repeated ExponentialHistogramDataPoint data_points = 1; }
message Summary { repeated SummaryDataPoint data_points = 1; }
message NumberDataPoint {
  repeated KeyValue attributes = 7;
  fixed64 time_unix_nano = 3;
  oneof value { double as_double = 4; sfixed64 as_int = 6; }
  uint32 flags = 8;
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  optional double sum = 5;
  repeated fixed64 bucket_counts = 6;
  repeated double explicit_bounds = 7;
  uint32 flags = 10;
}
message ExponentialHistogramDataPoint { }
message SummaryDataPoint {
  repeated KeyValue attributes = 7;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  double sum = 5;
  repeated ValueAtQuantile quantile_values = 6;
  uint32 flags = 8;
}
message ValueAtQuantile { double quantile = 1; double value = 2; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
`;

const root = protobuf.parse(OTLP, { keepCase: false }).root;
const Request = root.lookupType('otlp.ExportMetricsServiceRequest');
const Response = root.lookupType('otlp.ExportMetricsServiceResponse');
const TO_JSON_SHAPE: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  bytes: String,
  defaults: false,
  arrays: false,
};

/** A protobuf `ExportMetricsServiceRequest` → the OTLP JSON shape that `decodeOtlp` reads. */
export function otlpProtobufToJson(body: Uint8Array): Json {
  try {
    return Request.toObject(Request.decode(body), TO_JSON_SHAPE);
  } catch (err) {
    throw invalidRequest(`OTLP body is not a protobuf ExportMetricsServiceRequest: ${(err as Error).message}`, {
      field: 'body',
    });
  }
}

/** The reply: empty when everything was stored, else `partial_success` with the count and why. */
export function otlpResponse(
  result: Pick<OtlpResult, 'rejected' | 'message'>,
  encoding: 'protobuf' | 'json',
): Buffer | Json {
  const partial =
    result.rejected > 0 ? { rejectedDataPoints: result.rejected, errorMessage: result.message } : undefined;
  if (encoding === 'json')
    return partial ? { partialSuccess: { ...partial, rejectedDataPoints: String(partial.rejectedDataPoints) } } : {};
  return Buffer.from(Response.encode(Response.fromObject(partial ? { partialSuccess: partial } : {})).finish());
}

/** Resource attributes that identify a series besides `service.name` (the source); as Prometheus' OTLP receiver keeps them in job and instance. */
export const RESOURCE_TAGS = ['service.namespace', 'service.instance.id'];
/** The source when a resource has no `service.name` (the SDKs always set one). */
export const DEFAULT_SOURCE = 'unknown_service';
/** DataPointFlags.FLAG_NO_RECORDED_VALUE: the series ended (as Prometheus' staleness marker). */
const NO_RECORDED_VALUE = 1;

export interface OtlpResult {
  batch: PointBatch;
  /** Data points not stored, reported in `partial_success`. */
  rejected: number;
  /** Why, for `partial_success.error_message` ('' when none). */
  message: string;
  /** `rejected` by reason (exponential_histogram, non_finite, out_of_range, no_value, no_time), for the self-metrics. */
  rejectedBy: Record<string, number>;
  /** Data points flagged "no recorded value": skipped, not an error. */
  noRecordedValue: number;
}

type Reason = 'exponential_histogram' | 'non_finite' | 'out_of_range' | 'no_value' | 'no_time';
const REASONS: Record<Reason, string> = {
  exponential_histogram:
    'exponential histogram points (not stored: configure an explicit bucket histogram aggregation)',
  non_finite: 'NaN or infinite values (only finite values are stored)',
  out_of_range: `values beyond ±${MAX_ABS_VALUE} (rollups could not sum them)`,
  no_value: 'number points without as_double or as_int',
  no_time: 'points without time_unix_nano',
};

const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * The list under `key` (lowerCamelCase, as OTLP/JSON names fields) of `o`. Sent under its proto
 * field name instead (`scope_metrics`), it would be an unknown field, skipped, and a request
 * answered 200 with nothing stored: that is a problem noted under the name used (a 400).
 */
function list(c: PointCollector, o: Json, key: string, path: string): unknown[] {
  if (o[key] === undefined) {
    const snake = key.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
    if (o[snake] !== undefined) {
      c.problem(path === '' ? snake : `${path}.${snake}`, `OTLP/JSON names this field in lowerCamelCase: ${key}`);
      return [];
    }
  }
  return arr(o[key]);
}

/** Why some of these numbers cannot be stored (NaN or infinite first), or undefined. */
function unstorable(xs: readonly number[]): Reason | undefined {
  if (!xs.every(Number.isFinite)) return 'non_finite';
  if (!xs.every(isStorableValue)) return 'out_of_range';
  return undefined;
}

/**
 * An OTLP JSON `ExportMetricsServiceRequest` (or a protobuf one through otlpProtobufToJson) →
 * points. Names are kept as sent (dots included); `service.name` → source; data point attributes
 * and RESOURCE_TAGS → tags; gauges and sums (cumulative or delta, as sent) → one point each;
 * histograms → `<name>_bucket{le}` (cumulative counts, as Prometheus), `<name>_sum`, `<name>_count`;
 * summaries → `<name>{quantile}`, `<name>_sum`, `<name>_count`. Points Timescope cannot store
 * (exponential histograms, NaN/Inf, no value or time) are counted for partial_success; anything
 * else wrong (names, tags, times out of range, limits, malformed fields) refuses the request (400).
 */
export function decodeOtlp(body: unknown, ctx: DecodeContext, validated?: ValidatedSeries): OtlpResult {
  if (!isObject(body))
    throw invalidRequest('Request body must be an OTLP ExportMetricsServiceRequest: {"resourceMetrics": [...]}', {
      field: 'body',
    });
  if (body.resourceMetrics !== undefined && !Array.isArray(body.resourceMetrics)) {
    throw invalidRequest('resourceMetrics must be an array', { field: 'resourceMetrics' });
  }
  if (body.resourceMetrics === undefined && body.resource_metrics !== undefined) {
    throw invalidRequest('OTLP/JSON names this field in lowerCamelCase: resourceMetrics', {
      field: 'resource_metrics',
    });
  }
  const resources = arr(body.resourceMetrics);
  const c = new PointCollector(ctx, countPoints(resources), validated);
  const rejected = new Map<Reason, number>();
  const reject = (r: Reason, n = 1) => rejected.set(r, (rejected.get(r) ?? 0) + n);
  let noRecordedValue = 0;

  for (let r = 0; r < resources.length && !c.full; r++) {
    const rm = resources[r];
    const rPath = `resourceMetrics[${r}]`;
    if (!isObject(rm)) {
      c.problem(rPath, 'must be an object');
      continue;
    }
    const resourceAttrs = isObject(rm.resource)
      ? attributes(c, rm.resource.attributes, `${rPath}.resource.attributes`)
      : [];
    let source = DEFAULT_SOURCE;
    const resourceTags: Array<[string, string]> = [];
    for (const [k, v] of resourceAttrs) {
      if (k === 'service.name') source = v;
      else if (RESOURCE_TAGS.includes(k)) resourceTags.push([k, v]);
    }
    const scopes = list(c, rm, 'scopeMetrics', rPath);
    for (let s = 0; s < scopes.length && !c.full; s++) {
      const sm = scopes[s];
      const metrics = isObject(sm) ? arr(sm.metrics) : [];
      for (let m = 0; m < metrics.length && !c.full; m++) {
        const metric = metrics[m];
        const mPath = `${rPath}.scopeMetrics[${s}].metrics[${m}]`;
        if (!isObject(metric) || typeof metric.name !== 'string' || metric.name === '') {
          c.problem(`${mPath}.name`, 'is required and must be a non-empty string');
          continue;
        }
        const name = metric.name;
        const unit = typeof metric.unit === 'string' && metric.unit !== '' ? metric.unit : null;
        const kind = (['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary'] as const).find((k) =>
          isObject(metric[k]),
        );
        if (kind === undefined) continue; // no data: nothing to store
        const points = list(c, metric[kind] as Json, 'dataPoints', `${mPath}.${kind}`);
        if (kind === 'exponentialHistogram') {
          reject('exponential_histogram', points.length);
          continue;
        }
        for (let d = 0; d < points.length && !c.full; d++) {
          const dp = points[d];
          const at = `${mPath}.${kind}.dataPoints[${d}]`;
          if (!isObject(dp)) {
            c.problem(at, 'must be an object');
            continue;
          }
          if (typeof dp.flags === 'number' && dp.flags & NO_RECORDED_VALUE) {
            noRecordedValue++;
            continue;
          }
          const time = nanosToMs(dp.timeUnixNano);
          if (typeof time === 'string') {
            c.problem(`${at}.timeUnixNano`, time);
            continue;
          }
          if (time === 0) {
            reject('no_time');
            continue;
          }
          const tags = withTags(attributes(c, dp.attributes, `${at}.attributes`), resourceTags);
          const field = () => at;
          const timeField = () => `${at}.timeUnixNano`;
          if (kind === 'gauge' || kind === 'sum') {
            const v =
              dp.asDouble !== undefined ? double(dp.asDouble) : dp.asInt !== undefined ? int64(dp.asInt) : undefined;
            const why = typeof v === 'number' ? unstorable([v]) : undefined;
            if (v === undefined) reject('no_value');
            else if (typeof v === 'string') c.problem(`${at}.${dp.asDouble !== undefined ? 'asDouble' : 'asInt'}`, v);
            else if (why) reject(why);
            else {
              const idx = c.series(name, source, tags, unit, field);
              if (idx !== undefined) c.point(idx, time, v, timeField);
            }
          } else if (kind === 'histogram') {
            const count = int64(dp.count ?? 0);
            const sum = dp.sum === undefined || dp.sum === null ? undefined : double(dp.sum);
            const counts = arr(dp.bucketCounts).map(int64);
            const bounds = arr(dp.explicitBounds).map(double);
            const bad = [count, sum, ...counts, ...bounds].find((x) => typeof x === 'string');
            if (bad !== undefined) {
              c.problem(at, `count, sum, bucketCounts and explicitBounds must be numbers (${bad})`);
              continue;
            }
            if (counts.length > 0 && counts.length !== bounds.length + 1) {
              c.problem(
                `${at}.bucketCounts`,
                `has ${counts.length} counts for ${bounds.length} explicitBounds (must be one more)`,
              );
              continue;
            }
            // OTLP requires strictly increasing bounds: out of order, the cumulative counts would run
            // backwards; repeated, two buckets would be one series (the second overwriting the first).
            // NaN compares false here and is left to unstorable (skipped, in partial_success).
            const unordered = bounds.findIndex((x, i) => i > 0 && (x as number) <= (bounds[i - 1] as number));
            if (unordered > 0) {
              c.problem(
                `${at}.explicitBounds`,
                `must be strictly increasing (explicitBounds[${unordered}] = ${formatBound(bounds[unordered] as number)} after ${formatBound(bounds[unordered - 1] as number)})`,
              );
              continue;
            }
            const why = unstorable([count, sum ?? 0, ...bounds] as number[]);
            if (why) {
              reject(why);
              continue;
            }
            emit(c, `${name}_count`, source, tags, null, time, count as number, field, timeField);
            if (sum !== undefined) emit(c, `${name}_sum`, source, tags, unit, time, sum as number, field, timeField);
            let cumulative = 0;
            for (let b = 0; b < counts.length; b++) {
              cumulative += counts[b] as number;
              const le = b < bounds.length ? formatBound(bounds[b] as number) : '+Inf';
              emit(c, `${name}_bucket`, source, withTags([['le', le]], tags), null, time, cumulative, field, timeField);
            }
          } else {
            const count = int64(dp.count ?? 0);
            const sum = double(dp.sum ?? 0);
            const quantiles = arr(dp.quantileValues).map((q) =>
              isObject(q) ? [double(q.quantile ?? 0), double(q.value ?? 0)] : ['must be an object', 0],
            );
            const bad = [count, sum, ...quantiles.flat()].find((x) => typeof x === 'string');
            if (bad !== undefined) {
              c.problem(at, `count, sum and quantileValues must be numbers (${bad})`);
              continue;
            }
            const why = unstorable([count, sum, ...quantiles.flat()] as number[]);
            if (why) {
              reject(why);
              continue;
            }
            emit(c, `${name}_count`, source, tags, null, time, count as number, field, timeField);
            emit(c, `${name}_sum`, source, tags, unit, time, sum as number, field, timeField);
            for (const [q, v] of quantiles)
              emit(
                c,
                name,
                source,
                withTags([['quantile', formatBound(q as number)]], tags),
                unit,
                time,
                v as number,
                field,
                timeField,
              );
          }
        }
      }
    }
  }
  const batch = c.finish();
  let total = 0;
  const parts: string[] = [];
  for (const [reason, n] of rejected) {
    total += n;
    parts.push(`${n} ${REASONS[reason]}`);
  }
  return {
    batch,
    rejected: total,
    message: total ? `${total} data points not stored: ${parts.join('; ')}` : '',
    rejectedBy: Object.fromEntries(rejected),
    noRecordedValue,
  };
}

function emit(
  c: PointCollector,
  name: string,
  source: string,
  tags: Array<[string, string]>,
  unit: string | null,
  time: number,
  value: number,
  field: () => string,
  timeField: () => string,
): void {
  const idx = c.series(name, source, tags, unit, field);
  if (idx !== undefined) c.point(idx, time, value, timeField);
}

/** Points a request may store, histograms and summaries expanded: bounds INGEST_MAX_POINTS_PER_REQUEST before any work. */
function countPoints(resources: unknown[]): number {
  let n = 0;
  for (const rm of resources) {
    if (!isObject(rm)) continue;
    for (const sm of arr(rm.scopeMetrics)) {
      if (!isObject(sm)) continue;
      for (const m of arr(sm.metrics)) {
        if (!isObject(m)) continue;
        if (isObject(m.gauge)) n += arr(m.gauge.dataPoints).length;
        else if (isObject(m.sum)) n += arr(m.sum.dataPoints).length;
        else if (isObject(m.histogram))
          for (const dp of arr(m.histogram.dataPoints)) n += 2 + (isObject(dp) ? arr(dp.bucketCounts).length : 0);
        else if (isObject(m.summary))
          for (const dp of arr(m.summary.dataPoints)) n += 2 + (isObject(dp) ? arr(dp.quantileValues).length : 0);
      }
    }
  }
  return n;
}

/** `first`, then those of `more` whose key `first` lacks (a data point's attributes win over its resource's). */
function withTags(first: Array<[string, string]>, more: Array<[string, string]>): Array<[string, string]> {
  if (more.length === 0) return first;
  const out = first.slice();
  for (const t of more) if (!first.some(([k]) => k === t[0])) out.push(t);
  return out;
}

/** KeyValue list → tag pairs. Values as text; an empty value is no tag (as an empty Prometheus label). */
function attributes(c: PointCollector, list: unknown, path: string): Array<[string, string]> {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    c.problem(path, 'must be an array of {key, value}');
    return [];
  }
  const out: Array<[string, string]> = [];
  for (let i = 0; i < list.length; i++) {
    const kv = list[i];
    if (!isObject(kv) || typeof kv.key !== 'string') {
      c.problem(`${path}[${i}]`, 'must be {key: string, value: AnyValue}');
      continue;
    }
    const v = anyValueText(kv.value);
    if (v === undefined) {
      c.problem(
        `${path}[${i}].value`,
        'must be an AnyValue ({stringValue}, {intValue}, {doubleValue}, {boolValue}, {arrayValue}, {kvlistValue} or {bytesValue})',
      );
      continue;
    }
    if (v !== '') out.push([kv.key, v]);
  }
  return out;
}

/** An AnyValue as tag text: strings as they are, numbers and booleans written out, arrays and maps as JSON, bytes as base64. */
function anyValueText(v: unknown): string | undefined {
  if (v === undefined || v === null) return '';
  if (!isObject(v)) return undefined;
  if (typeof v.stringValue === 'string') return v.stringValue;
  if (typeof v.boolValue === 'boolean') return String(v.boolValue);
  if (v.intValue !== undefined) {
    const n = int64Text(v.intValue);
    return n;
  }
  if (v.doubleValue !== undefined) {
    const d = double(v.doubleValue);
    return typeof d === 'number' ? String(d) : undefined;
  }
  if (typeof v.bytesValue === 'string') return v.bytesValue;
  if (isObject(v.arrayValue) || isObject(v.kvlistValue)) {
    const plain = anyValuePlain(v, 0);
    return plain === undefined ? undefined : JSON.stringify(plain);
  }
  return Object.keys(v).length === 0 ? '' : undefined;
}

function anyValuePlain(v: unknown, depth: number): unknown {
  if (depth > 8 || !isObject(v)) return undefined;
  if (isObject(v.arrayValue)) return arr(v.arrayValue.values).map((x) => anyValuePlain(x, depth + 1) ?? null);
  if (isObject(v.kvlistValue)) {
    const o: Record<string, unknown> = {};
    for (const kv of arr(v.kvlistValue.values))
      if (isObject(kv) && typeof kv.key === 'string')
        Object.defineProperty(o, kv.key, { value: anyValuePlain(kv.value, depth + 1) ?? null, enumerable: true });
    return o;
  }
  if (v.intValue !== undefined) return int64Text(v.intValue);
  const t = anyValueText(v);
  return t;
}

/** OTLP JSON doubles: numbers, or "NaN", "Infinity", "-Infinity" (proto3 JSON). A string when malformed. */
function double(v: unknown): number | string {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return `${JSON.stringify(v)?.slice(0, 40)} is not a number`;
}

const INT64 = /^-?\d{1,20}$/;

/** 64-bit integers: decimal strings or numbers (accepted both, as OTLP JSON says). A string when malformed. */
function int64(v: unknown): number | string {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && INT64.test(v)) return Number(v);
  return `${JSON.stringify(v)?.slice(0, 40)} is not a 64-bit integer`;
}

function int64Text(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  if (typeof v === 'string' && INT64.test(v)) return v;
  return undefined;
}

/**
 * `timeUnixNano` → epoch ms with the microseconds as a fraction, the nanoseconds dropped (exact: cut
 * as text; a JSON number, a double, as floorToMicros reads epoch numbers). 0 when absent.
 */
export function nanosToMs(v: unknown): number | string {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return floorToMicros(v, 'ns');
  if (typeof v === 'string' && /^\d{1,20}$/.test(v)) return v.length <= 3 ? 0 : Number(v.slice(0, -3)) / 1000;
  return 'must be nanoseconds since the Unix epoch, as a decimal string or an integer';
}

/** A bucket bound or quantile as a label value: Prometheus' spelling (+Inf, -Inf, shortest decimal). */
function formatBound(x: number): string {
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return String(x);
}
