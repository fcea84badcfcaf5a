import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  InstrumentType,
  MeterProvider,
  MetricReader,
  ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { ApiError } from '../../src/common/errors.js';
import { BoundedCache } from '../../src/common/bounded-cache.js';
import type { ValidatedSeries } from '../../src/ingestion/collect.js';
import type { DecodeContext } from '../../src/ingestion/decode.js';
import { decodeOtlp, nanosToMs, otlpProtobufToJson, otlpResponse } from '../../src/ingestion/otlp.js';
import type { PointBatch } from '../../src/storage/point-batch.js';

/*
 * Payloads come from the OpenTelemetry JS SDK and its own OTLP serializers (the ones its
 * exporters send), protobuf and JSON; @opentelemetry/otlp-transformer and /resources are the
 * dependencies of the declared exporter and SDK packages.
 */

const ctx = (now = Date.now(), over: Partial<DecodeContext['limits']> = {}): DecodeContext => ({
  now,
  limits: {
    maxPoints: 1000,
    maxTags: 8,
    maxNameLength: 80,
    maxTagKeyLength: 32,
    maxTagValueLength: 64,
    maxFutureMs: 600_000,
    retentionDays: 7,
    ...over,
  },
});

/** A reader collected on demand (what PeriodicExportingMetricReader does on its timer). */
class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function sdkPayload(
  temporality = AggregationTemporality.CUMULATIVE,
  exponential = false,
): Promise<ResourceMetrics> {
  const reader = new OnDemandReader({
    aggregationTemporalitySelector: () => temporality,
    aggregationSelector: (type) =>
      exponential && type === InstrumentType.HISTOGRAM
        ? { type: AggregationType.EXPONENTIAL_HISTOGRAM }
        : { type: AggregationType.DEFAULT },
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      'service.name': 'checkout',
      'service.namespace': 'shop',
      'host.name': 'h1',
      'process.pid': 1234,
    }),
    readers: [reader],
  });
  const meter = provider.getMeter('unit-test', '1.0.0');
  const requests = meter.createCounter('http.requests', { unit: '{request}' });
  requests.add(3, { 'http.route': '/a', ok: true });
  requests.add(2, { 'http.route': '/a', ok: true });
  requests.add(7, { 'http.route': '/b', ok: false });
  const depth = meter.createUpDownCounter('queue.depth');
  depth.add(5);
  depth.add(-2);
  const latency = meter.createHistogram('latency', { unit: 'ms', advice: { explicitBucketBoundaries: [10, 100] } });
  for (const v of [5, 50, 500]) latency.record(v, { 'http.route': '/a' });
  const temperature = meter.createObservableGauge('room.temperature', { unit: 'Cel' });
  temperature.addCallback((r) => r.observe(21.5, { room: 'lab', floor: 2 }));
  const { resourceMetrics, errors } = await reader.collect();
  assert.deepEqual(errors, []);
  await provider.shutdown();
  return resourceMetrics;
}

/** The batch as rows `name{tags}@source = value`, sorted, for comparisons. */
function rows(b: PointBatch): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.length; i++) {
    const s = b.series[b.seriesIndex[i]];
    out.push(`${s.metric}${s.tagsKey}@${s.source}${s.unit ? `[${s.unit}]` : ''} = ${b.values[i]}`);
  }
  return out.sort();
}

function rejects(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    return e;
  }
  assert.fail('accepted');
}

describe('OTLP metrics decoder', () => {
  it('reads the SDK payload alike as protobuf and as JSON: sums, up-down sums, histograms, gauges', async () => {
    const rm = await sdkPayload();
    const proto = ProtobufMetricsSerializer.serializeRequest(rm)!;
    const json = JSON.parse(Buffer.from(JsonMetricsSerializer.serializeRequest(rm)!).toString());
    const fromProto = decodeOtlp(otlpProtobufToJson(proto), ctx());
    const fromJson = decodeOtlp(json, ctx());
    assert.equal(fromProto.rejected, 0);
    assert.deepEqual(rows(fromProto.batch), rows(fromJson.batch));
    assert.deepEqual([...fromProto.batch.times], [...fromJson.batch.times]);
    const ns = '"service.namespace":"shop"';
    assert.deepEqual(rows(fromProto.batch), [
      `http.requests{"http.route":"/a","ok":"true",${ns}}@checkout[{request}] = 5`,
      `http.requests{"http.route":"/b","ok":"false",${ns}}@checkout[{request}] = 7`,
      `latency_bucket{"http.route":"/a","le":"+Inf",${ns}}@checkout = 3`,
      `latency_bucket{"http.route":"/a","le":"10",${ns}}@checkout = 1`,
      `latency_bucket{"http.route":"/a","le":"100",${ns}}@checkout = 2`,
      `latency_count{"http.route":"/a",${ns}}@checkout = 3`,
      `latency_sum{"http.route":"/a",${ns}}@checkout[ms] = 555`,
      `queue.depth{${ns}}@checkout = 3`,
      `room.temperature{"floor":"2","room":"lab",${ns}}@checkout[Cel] = 21.5`,
    ]);
    // Times are the data points' end times, within the last seconds.
    for (const t of fromProto.batch.times) assert.ok(Math.abs(t - Date.now()) < 10_000, String(t));
  });

  it('stores delta sums and histograms as sent (the delta of each interval)', async () => {
    const rm = await sdkPayload(AggregationTemporality.DELTA);
    const r = decodeOtlp(otlpProtobufToJson(ProtobufMetricsSerializer.serializeRequest(rm)!), ctx());
    assert.ok(rows(r.batch).some((x) => x.startsWith('http.requests{"http.route":"/a"') && x.endsWith('= 5')));
  });

  it('reports exponential histograms in partial_success and stores the rest', async () => {
    const rm = await sdkPayload(AggregationTemporality.CUMULATIVE, true);
    const r = decodeOtlp(otlpProtobufToJson(ProtobufMetricsSerializer.serializeRequest(rm)!), ctx());
    assert.equal(r.rejected, 1);
    assert.deepEqual(r.rejectedBy, { exponential_histogram: 1 });
    assert.match(r.message, /1 exponential histogram points \(not stored/);
    assert.ok(!rows(r.batch).some((x) => x.startsWith('latency')));
    assert.ok(rows(r.batch).some((x) => x.startsWith('room.temperature')));
    // The reply, read back by the SDK's own deserializers.
    const proto = ProtobufMetricsSerializer.deserializeResponse(otlpResponse(r, 'protobuf') as Buffer);
    assert.equal(Number(proto.partialSuccess?.rejectedDataPoints), 1);
    assert.equal(proto.partialSuccess?.errorMessage, r.message);
    const json = JsonMetricsSerializer.deserializeResponse(Buffer.from(JSON.stringify(otlpResponse(r, 'json'))));
    assert.equal(Number(json.partialSuccess?.rejectedDataPoints), 1);
    assert.deepEqual(otlpResponse({ rejected: 0, message: '' }, 'json'), {});
    assert.equal((otlpResponse({ rejected: 0, message: '' }, 'protobuf') as Buffer).length, 0);
  });

  const NOW = Date.UTC(2024, 0, 15, 10, 30);
  const T = `${BigInt(NOW) * 1_000_000n + 123_456n}`; // 123.456 µs after NOW
  const body = (
    metrics: unknown[],
    resource: unknown[] = [{ key: 'service.name', value: { stringValue: 'svc' } }],
  ) => ({
    resourceMetrics: [{ resource: { attributes: resource }, scopeMetrics: [{ scope: { name: 's' }, metrics }] }],
  });
  const gauge = (name: string, dp: Record<string, unknown>) => ({
    name,
    gauge: { dataPoints: [{ timeUnixNano: T, ...dp }] },
  });

  it('reads summaries as Prometheus does: {quantile} series, _sum and _count', () => {
    const r = decodeOtlp(
      body([
        {
          name: 'rpc.duration',
          unit: 's',
          summary: {
            dataPoints: [
              {
                timeUnixNano: T,
                count: '4',
                sum: 2.5,
                quantileValues: [
                  { quantile: 0.5, value: 0.4 },
                  { quantile: 0.99, value: 1.2 },
                ],
              },
            ],
          },
        },
      ]),
      ctx(NOW),
    );
    assert.deepEqual(rows(r.batch), [
      'rpc.duration_count{}@svc = 4',
      'rpc.duration_sum{}@svc[s] = 2.5',
      'rpc.duration{"quantile":"0.5"}@svc[s] = 0.4',
      'rpc.duration{"quantile":"0.99"}@svc[s] = 1.2',
    ]);
  });

  it('keeps the microseconds of timeUnixNano exactly, as strings or numbers', () => {
    assert.equal(nanosToMs(T), NOW + 0.123);
    assert.equal(nanosToMs('1705314600000000999'), 1705314600000);
    assert.equal(nanosToMs(1705314600000000000), 1705314600000);
    // A number drops the nanoseconds as the text does (line protocol too), rather than rounding them.
    assert.equal(nanosToMs(Number('1705314600123456789')), 1705314600123.456);
    assert.equal(nanosToMs(Number('1705314600123456789')), nanosToMs('1705314600123456789'));
    assert.equal(nanosToMs(undefined), 0);
    assert.match(String(nanosToMs('12.5')), /nanoseconds/);
    const r = decodeOtlp(body([gauge('g', { asDouble: 1 })]), ctx(NOW));
    assert.equal(r.batch.times[0], NOW + 0.123);
  });

  it('turns attribute values into tag text; empty values are no tag; a data point attribute wins over a resource one', () => {
    const r = decodeOtlp(
      body(
        [
          gauge('g', {
            asInt: '42',
            attributes: [
              { key: 'b', value: { boolValue: false } },
              { key: 'i', value: { intValue: '9007199254740993' } },
              { key: 'd', value: { doubleValue: 0.25 } },
              { key: 'arr', value: { arrayValue: { values: [{ stringValue: 'x' }, { intValue: 1 }] } } },
              { key: 'kv', value: { kvlistValue: { values: [{ key: 'k', value: { boolValue: true } }] } } },
              { key: 'bytes', value: { bytesValue: 'AAE=' } },
              { key: 'empty', value: { stringValue: '' } },
              { key: 'none', value: {} },
              { key: 'service.instance.id', value: { stringValue: 'from-point' } },
            ],
          }),
        ],
        [
          { key: 'service.name', value: { stringValue: 'svc' } },
          { key: 'service.instance.id', value: { stringValue: 'from-resource' } },
          { key: 'telemetry.sdk.name', value: { stringValue: 'opentelemetry' } },
        ],
      ),
      ctx(NOW),
    );
    assert.deepEqual(r.batch.series[0].tags, {
      arr: '["x","1"]',
      b: 'false',
      bytes: 'AAE=',
      d: '0.25',
      i: '9007199254740993',
      kv: '{"k":"true"}',
      'service.instance.id': 'from-point',
    });
    assert.equal(r.batch.values[0], 42);
  });

  it('reports NaN, infinities, missing values and missing times in partial_success; skips "no recorded value" points silently', () => {
    const r = decodeOtlp(
      body([
        gauge('ok', { asDouble: 1 }),
        gauge('nan', { asDouble: 'NaN' }),
        gauge('inf', { asDouble: 'Infinity' }),
        gauge('huge', { asDouble: 1e297 }),
        gauge('none', {}),
        { name: 'notime', gauge: { dataPoints: [{ asDouble: 1 }] } },
        gauge('flagged', { asDouble: 0, flags: 1 }),
        {
          name: 'h',
          histogram: {
            dataPoints: [{ timeUnixNano: T, count: '1', sum: 'NaN', bucketCounts: ['1'], explicitBounds: [] }],
          },
        },
      ]),
      ctx(NOW),
    );
    assert.deepEqual(rows(r.batch), ['ok{}@svc = 1']);
    assert.equal(r.rejected, 6);
    assert.deepEqual(r.rejectedBy, { non_finite: 3, out_of_range: 1, no_value: 1, no_time: 1 });
    assert.equal(r.noRecordedValue, 1);
    assert.match(r.message, /^6 data points not stored: 3 NaN or infinite values/);
    assert.match(r.message, /1 values beyond ±1e\+296/);
  });

  it('refuses the whole request (400) for bad names, tags, times and malformed fields, naming the field', () => {
    const cases: Array<[unknown, RegExp, RegExp]> = [
      [null, /^body$/, /ExportMetricsServiceRequest/],
      [{ resourceMetrics: {} }, /^resourceMetrics$/, /array/],
      [
        body([gauge('ok', { asDouble: 1 }), gauge('bad/name', { asDouble: 1 })]),
        /metrics\[1\]\.gauge\.dataPoints\[0\]/,
        /metric name "bad\/name" must start/,
      ],
      [body([{ unit: 'x', gauge: { dataPoints: [] } }]), /metrics\[0\]\.name$/, /required/],
      [
        body([gauge('g', { asDouble: 1, attributes: [{ key: '__x', value: { stringValue: 'v' } }] })]),
        /dataPoints\[0\]/,
        /reserved/,
      ],
      [
        body([gauge('g', { asDouble: 1, attributes: [{ key: 'k', value: { stringValue: 'v'.repeat(65) } }] })]),
        /dataPoints\[0\]/,
        /1 to 64 characters/,
      ],
      [
        body([gauge('g', { asDouble: 1, attributes: [{ key: 'k' }, { value: {} }] })]),
        /attributes\[1\]$/,
        /key: string/,
      ],
      [
        body([gauge('g', { asDouble: 1, attributes: [{ key: 'k', value: { stringValue: 5 } }] })]),
        /attributes\[0\]\.value$/,
        /AnyValue/,
      ],
      [body([gauge('g', { asDouble: 'one' })]), /dataPoints\[0\]\.asDouble$/, /not a number/],
      [body([gauge('g', { asInt: '1.5' })]), /dataPoints\[0\]\.asInt$/, /64-bit integer/],
      [body([gauge('g', { asDouble: 1, timeUnixNano: 'yesterday' })]), /timeUnixNano$/, /nanoseconds/],
      [
        body([gauge('g', { asDouble: 1, timeUnixNano: `${BigInt(NOW + 3_600_000) * 1_000_000n}` })]),
        /timeUnixNano$/,
        /in the future/,
      ],
      [
        body([
          {
            name: 'h',
            histogram: {
              dataPoints: [{ timeUnixNano: T, count: '2', bucketCounts: ['1', '1'], explicitBounds: [1, 2] }],
            },
          },
        ]),
        /bucketCounts$/,
        /2 counts for 2 explicitBounds/,
      ],
      // OTLP requires strictly increasing bounds: out of order, the cumulative counts would run
      // backwards (le="2" 1, le="1" 2); repeated, two buckets would be one series.
      ...[
        [[2, 1], /explicitBounds\[1\] = 1 after 2/],
        [[1, 1], /explicitBounds\[1\] = 1 after 1/],
        [[0, 5, 5, 7], /explicitBounds\[2\] = 5 after 5/],
        [[-0, 0], /explicitBounds\[1\] = 0 after 0/],
      ].map(([bounds, message]): [unknown, RegExp, RegExp] => [
        body([
          gauge('ok', { asDouble: 1 }),
          {
            name: 'hb1',
            histogram: {
              aggregationTemporality: 2,
              dataPoints: [
                {
                  timeUnixNano: T,
                  count: String((bounds as number[]).length + 1),
                  bucketCounts: Array((bounds as number[]).length + 1).fill('1'),
                  explicitBounds: bounds,
                },
              ],
            },
          },
        ]),
        /^resourceMetrics\[0\]\.scopeMetrics\[0\]\.metrics\[1\]\.histogram\.dataPoints\[0\]\.explicitBounds$/,
        new RegExp(`must be strictly increasing \\(${(message as RegExp).source}\\)`),
      ]),
      [
        body([gauge('g', { asDouble: 1 })], [{ key: 'service.name', value: { stringValue: 'x'.repeat(81) } }]),
        /dataPoints\[0\]/,
        /source "x+" must be at most 80/,
      ],
    ];
    for (const [b, field, message] of cases) {
      const e = rejects(() => decodeOtlp(b, ctx(NOW)));
      assert.equal(e.getStatus(), 400, e.message);
      assert.match(String(e.details?.field), field, `${e.message} (${JSON.stringify(e.details)})`);
      assert.match(e.message, message);
    }
  });

  it('answers 413 past INGEST_MAX_POINTS_PER_REQUEST, counting histogram buckets, before any work', () => {
    const h = {
      name: 'h',
      histogram: {
        dataPoints: [{ timeUnixNano: T, count: '3', bucketCounts: ['1', '1', '1'], explicitBounds: [1, 2] }],
      },
    };
    // Counted as buckets + _sum + _count (5) before decoding; stored: 3 buckets and _count (no sum was sent).
    assert.equal(decodeOtlp(body([h]), ctx(NOW, { maxPoints: 5 })).batch.length, 4);
    const e = rejects(() => decodeOtlp(body([h, gauge('g', { asDouble: 1 })]), ctx(NOW, { maxPoints: 5 })));
    assert.equal(e.getStatus(), 413);
    assert.match(e.message, /6 > 5 \(INGEST_MAX_POINTS_PER_REQUEST\)/);
  });

  it('refuses a body that is not a protobuf ExportMetricsServiceRequest', () => {
    const e = rejects(() => otlpProtobufToJson(Buffer.from('{"resourceMetrics": []}')));
    assert.equal(e.getStatus(), 400);
    assert.match(e.message, /not a protobuf ExportMetricsServiceRequest/);
    // An empty request is zero bytes, and valid.
    assert.deepEqual(decodeOtlp(otlpProtobufToJson(Buffer.alloc(0)), ctx()).batch.length, 0);
  });
});

describe('OTLP series cache', () => {
  it('cannot be spelled by another series: a tag value or unit holding NULs is refused after a valid series was cached', () => {
    const validated: ValidatedSeries = new BoundedCache(100);
    const now = Date.now();
    const body = (attributes: Array<[string, string]>, unit?: string) => ({
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'nul_probe',
                  ...(unit === undefined ? {} : { unit }),
                  gauge: {
                    dataPoints: [
                      {
                        timeUnixNano: String(BigInt(now) * 1_000_000n),
                        asDouble: 1,
                        attributes: attributes.map(([key, v]) => ({ key, value: { stringValue: v } })),
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    // The valid series first, then what once spelled the same cache key with NULs.
    assert.equal(
      decodeOtlp(
        body([
          ['a', 'b'],
          ['c', 'd'],
        ]),
        ctx(now),
        validated,
      ).batch.length,
      1,
    );
    rejects(() => decodeOtlp(body([['a', 'b\u0000c\u0000d']]), ctx(now), validated));
    assert.equal(decodeOtlp(body([['a', 'b']], 'ms'), ctx(now), validated).batch.length, 1);
    rejects(() => decodeOtlp(body([], 'ms\u0000a\u0000b'), ctx(now), validated));
  });
});

describe('OTLP/JSON field names', () => {
  it('refuses lists sent under their proto names (snake_case) with a 400 naming them, instead of storing nothing', () => {
    const now = Date.now();
    const dataPoints = [{ timeUnixNano: String(BigInt(now) * 1_000_000n), asDouble: 1 }];
    const cases: Array<[unknown, string]> = [
      [{ resource_metrics: [] }, 'resource_metrics'],
      [{ resourceMetrics: [{ scope_metrics: [] }] }, 'resourceMetrics[0].scope_metrics'],
      [
        { resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'm', gauge: { data_points: dataPoints } }] }] }] },
        'resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.data_points',
      ],
    ];
    for (const [body, field] of cases) {
      const e = rejects(() => decodeOtlp(body, ctx(now)));
      assert.equal(e.getStatus(), 400, field);
      assert.ok(JSON.stringify(e.body()).includes(field), `${field}: ${JSON.stringify(e.body())}`);
    }
    // The lowerCamelCase body is stored.
    const ok = { resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'm', gauge: { dataPoints } }] }] }] };
    assert.equal(decodeOtlp(ok, ctx(now)).batch.length, 1);
  });
});
