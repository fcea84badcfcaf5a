import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPMetricExporter as OTLPJsonExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPProtoExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  InstrumentType,
  MeterProvider,
  MetricReader,
  PeriodicExportingMetricReader,
  PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { parseExposition, sampleValue } from '../support/prom-text.js';
import { describeEachFlavour } from '../support/suite.js';

/*
 * The real client: the OpenTelemetry JS SDK (MeterProvider, PeriodicExportingMetricReader) with
 * its OTLP/HTTP exporters, protobuf and JSON, pointed at the app listening on a real port with an
 * ingest key in the headers. Values are read back through GET /api/v1/metrics/query.
 */

/** Wraps an exporter to keep what each export answered (the SDK only logs failures). */
function recording(exporter: PushMetricExporter): { exporter: PushMetricExporter; results: ExportResult[] } {
  const results: ExportResult[] = [];
  const original = exporter.export.bind(exporter);
  exporter.export = (metrics, done) => original(metrics, (r) => (results.push(r), done(r)));
  return { exporter, results };
}

class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

describeEachFlavour('ingest: OTLP/HTTP metrics', (ctx) => {
  let base: string;
  before(async () => {
    base = `http://127.0.0.1:${await ctx.t.listen()}`;
  });

  /** The last value of a series in the last hour, through the query API. */
  async function last(metric: string, source: string, tags: Record<string, string> = {}): Promise<number | undefined> {
    const q = new URLSearchParams({ metric, source, aggregation: 'last', from: 'now-1h', to: 'now+1m' });
    for (const [k, v] of Object.entries(tags)) q.append('tags', `${k}:${v}`);
    const r = await ctx.t.get(`/api/v1/metrics/query?${q}`);
    assert.equal(r.status, 200, `${metric}: ${r.body}`);
    const points = r.json.data_points as Array<{ value: number }>;
    return points.length ? points[points.length - 1].value : undefined;
  }

  for (const encoding of ['protobuf', 'json'] as const) {
    it(`takes the SDK's ${encoding} exporter${encoding === 'protobuf' ? ' (gzip)' : ''}: counters, up-down counters, histograms, observable gauges`, async () => {
      const key = await ctx.t.key(['ingest'], `otel-${encoding}`);
      const url = `${base}/v1/metrics`;
      const headers = { authorization: `Bearer ${key}` };
      const { exporter, results } = recording(
        encoding === 'protobuf'
          ? new OTLPProtoExporter({ url, headers, compression: 'gzip' as never })
          : new OTLPJsonExporter({ url, headers }),
      );
      const source = `otel-${encoding}`;
      const provider = new MeterProvider({
        resource: resourceFromAttributes({ 'service.name': source, 'service.instance.id': 'i-1', 'host.name': 'box' }),
        readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
      });
      try {
        const meter = provider.getMeter('timescope-test');
        const requests = meter.createCounter('otel.requests', { unit: '{request}' });
        requests.add(3, { 'http.route': '/a' });
        requests.add(2, { 'http.route': '/a' });
        const depth = meter.createUpDownCounter('otel.queue.depth');
        depth.add(5);
        depth.add(-2);
        const latency = meter.createHistogram('otel.latency', {
          unit: 'ms',
          advice: { explicitBucketBoundaries: [10, 100] },
        });
        for (const v of [5, 50, 500]) latency.record(v);
        meter
          .createObservableGauge('otel.temperature', { unit: 'Cel' })
          .addCallback((r) => r.observe(21.5, { room: 'lab' }));
        await provider.forceFlush();
        assert.deepEqual(
          results.map((r) => [r.code, r.error?.message]),
          [[0, undefined]],
        );

        const tags = { 'service.instance.id': 'i-1' };
        assert.equal(await last('otel.requests', source, { ...tags, 'http.route': '/a' }), 5);
        assert.equal(await last('otel.queue.depth', source, tags), 3);
        assert.equal(await last('otel.latency_bucket', source, { ...tags, le: '10' }), 1);
        assert.equal(await last('otel.latency_bucket', source, { ...tags, le: '100' }), 2);
        assert.equal(await last('otel.latency_bucket', source, { ...tags, le: '+Inf' }), 3);
        assert.equal(await last('otel.latency_sum', source, tags), 555);
        assert.equal(await last('otel.latency_count', source, tags), 3);
        assert.equal(await last('otel.temperature', source, { ...tags, room: 'lab' }), 21.5);
        const units = (
          await ctx.t.sql.query(
            `SELECT metric, unit FROM series WHERE source = $1 AND unit IS NOT NULL ORDER BY metric`,
            [source],
          )
        ).rows.map((r) => [r.metric, r.unit]);
        assert.deepEqual(units, [
          ['otel.latency_sum', 'ms'],
          ['otel.requests', '{request}'],
          ['otel.temperature', 'Cel'],
        ]);

        // Cumulative sums are stored as the cumulative value, as Prometheus does.
        requests.add(1, { 'http.route': '/a' });
        await provider.forceFlush();
        assert.equal(results.length, 2);
        assert.equal(results[1].code, 0);
        assert.equal(await last('otel.requests', source, { ...tags, 'http.route': '/a' }), 6);
      } finally {
        await provider.shutdown();
      }
    });
  }

  it('counts what it stored under protocol "otlp" in the self-metrics', async () => {
    const families = parseExposition((await ctx.t.get('/prometheus-metrics')).body);
    assert.ok(
      (sampleValue(families, 'timescope_ingest_points_committed_total', { protocol: 'otlp' }) ?? 0) >= 2 * (8 + 1),
    );
  });

  /** A payload of the SDK's own protobuf serializer, exponential histograms for histogram instruments. */
  async function exponentialPayload(): Promise<Uint8Array> {
    const reader = new OnDemandReader({
      aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE,
      aggregationSelector: (type) => ({
        type: type === InstrumentType.HISTOGRAM ? AggregationType.EXPONENTIAL_HISTOGRAM : AggregationType.DEFAULT,
      }),
    });
    const provider = new MeterProvider({
      resource: resourceFromAttributes({ 'service.name': 'otel-partial' }),
      readers: [reader],
    });
    const meter = provider.getMeter('timescope-test');
    meter.createHistogram('otel.exp').record(3);
    meter.createCounter('otel.kept').add(1);
    const { resourceMetrics } = await reader.collect();
    await provider.shutdown();
    return ProtobufMetricsSerializer.serializeRequest(resourceMetrics)!;
  }

  it("answers partial_success in the request's encoding for points it does not store, and stores the rest", async () => {
    const proto = await fetch(`${base}/v1/metrics`, {
      method: 'POST',
      body: await exponentialPayload(),
      headers: { ...ctx.t.authHeaders, 'content-type': 'application/x-protobuf' },
    });
    assert.equal(proto.status, 200);
    assert.equal(proto.headers.get('content-type'), 'application/x-protobuf');
    const response = ProtobufMetricsSerializer.deserializeResponse(new Uint8Array(await proto.arrayBuffer()));
    assert.equal(Number(response.partialSuccess?.rejectedDataPoints), 1);
    assert.match(String(response.partialSuccess?.errorMessage), /exponential histogram/);
    assert.equal(await last('otel.kept', 'otel-partial'), 1);

    const T = `${BigInt(Date.now()) * 1_000_000n}`;
    const json = await ctx.t.post('/v1/metrics', {
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'otel-json-partial' } }] },
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'otel.nan',
                  gauge: {
                    dataPoints: [
                      { timeUnixNano: T, asDouble: 'NaN' },
                      { timeUnixNano: T, asDouble: 2 },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    assert.equal(json.status, 200, json.body);
    assert.match(String(json.headers['content-type']), /^application\/json/);
    assert.deepEqual(json.json, {
      partialSuccess: {
        rejectedDataPoints: '1',
        errorMessage: '1 data points not stored: 1 NaN or infinite values (only finite values are stored)',
      },
    });
    assert.equal(await last('otel.nan', 'otel-json-partial'), 2);
    // Fully stored: an empty response.
    const ok = await ctx.t.post('/v1/metrics', { resourceMetrics: [] });
    assert.deepEqual([ok.status, ok.json], [200, {}]);
  });

  it('stores nothing of an export with one bad metric, and answers 400 naming it', async () => {
    const T = `${BigInt(Date.now()) * 1_000_000n}`;
    const r = await ctx.t.post('/v1/metrics', {
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'otel-atomic' } }] },
          scopeMetrics: [
            {
              metrics: [
                { name: 'otel.good', gauge: { dataPoints: [{ timeUnixNano: T, asDouble: 1 }] } },
                { name: 'otel/bad', gauge: { dataPoints: [{ timeUnixNano: T, asDouble: 1 }] } },
              ],
            },
          ],
        },
      ],
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'INVALID_REQUEST');
    assert.equal(r.json.error.details.field, 'resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0]');
    assert.equal(
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series WHERE source = 'otel-atomic'`)).rows[0].n),
      0,
    );
  });

  /** The SDK's protobuf of one histogram (bounds 1, 2; three points), its bounds then replaced by `bounds`. */
  async function histogramPayload(source: string, bounds: number[]): Promise<Uint8Array> {
    const reader = new OnDemandReader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
    const provider = new MeterProvider({
      resource: resourceFromAttributes({ 'service.name': source }),
      readers: [reader],
    });
    const h = provider
      .getMeter('timescope-test')
      .createHistogram('hb1', { advice: { explicitBucketBoundaries: [1, 2] } });
    for (const v of [0.5, 1.5, 2.5]) h.record(v);
    const { resourceMetrics } = await reader.collect();
    await provider.shutdown();
    const point = resourceMetrics.scopeMetrics[0].metrics[0].dataPoints[0] as {
      value: { buckets: { boundaries: number[] } };
    };
    point.value.buckets.boundaries = bounds;
    return ProtobufMetricsSerializer.serializeRequest(resourceMetrics)!;
  }

  it('refuses a histogram whose explicitBounds are not strictly increasing (400 naming them), as JSON and protobuf, storing nothing', async () => {
    const T = `${BigInt(Date.now()) * 1_000_000n}`;
    const field = 'resourceMetrics[0].scopeMetrics[0].metrics[1].histogram.dataPoints[0].explicitBounds';
    for (const bounds of [
      [2, 1],
      [1, 1],
    ]) {
      const source = `otel-bounds-${bounds.join('-')}`;
      const json = await ctx.t.post('/v1/metrics', {
        resourceMetrics: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: source } }] },
            scopeMetrics: [
              {
                metrics: [
                  { name: 'otel.before', gauge: { dataPoints: [{ timeUnixNano: T, asDouble: 1 }] } },
                  {
                    name: 'hb1',
                    histogram: {
                      aggregationTemporality: 2,
                      dataPoints: [
                        { timeUnixNano: T, count: '3', bucketCounts: ['1', '1', '1'], explicitBounds: bounds },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
      });
      assert.equal(json.status, 400, json.body);
      assert.equal(json.json.error.code, 'INVALID_REQUEST');
      assert.equal(json.json.error.details.field, field);
      assert.match(json.json.error.message, /explicitBounds.*must be strictly increasing/);

      const proto = await fetch(`${base}/v1/metrics`, {
        method: 'POST',
        body: await histogramPayload(source, bounds),
        headers: { ...ctx.t.authHeaders, 'content-type': 'application/x-protobuf' },
      });
      assert.equal(proto.status, 400);
      const envelope = (await proto.json()) as { error: { details: { field: string }; message: string } };
      assert.equal(envelope.error.details.field, field.replace('metrics[1]', 'metrics[0]'));
      assert.match(envelope.error.message, /must be strictly increasing/);
      assert.equal(
        Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series WHERE source = $1`, [source])).rows[0].n),
        0,
      );
    }
  });

  it('needs an ingest key (403 for a read key), takes gzip JSON, and refuses other types (415) and undecodable bodies (400)', async () => {
    const T = `${BigInt(Date.now()) * 1_000_000n}`;
    const body = {
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'otel-auth' } }] },
          scopeMetrics: [{ metrics: [{ name: 'otel.g', gauge: { dataPoints: [{ timeUnixNano: T, asInt: '7' }] } }] }],
        },
      ],
    };
    const read = await ctx.t.key(['read']);
    const forbidden = await ctx.t.request('POST', '/v1/metrics', body, { authorization: `Bearer ${read}` });
    assert.equal(forbidden.status, 403);
    assert.equal((await ctx.t.request('POST', '/v1/metrics', body, { authorization: '' })).status, 401);
    const gz = await ctx.t.request('POST', '/v1/metrics', gzipSync(JSON.stringify(body)), {
      ...ctx.t.authHeaders,
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(gz.status, 200, gz.body);
    assert.equal(await last('otel.g', 'otel-auth'), 7);
    const text = await ctx.t.request('POST', '/v1/metrics', 'otel.g 1', {
      ...ctx.t.authHeaders,
      'content-type': 'text/plain',
    });
    assert.equal(text.status, 415);
    const garbage = await ctx.t.request('POST', '/v1/metrics', Buffer.from([0x0a, 0xff, 0xff, 0xff]), {
      ...ctx.t.authHeaders,
      'content-type': 'application/x-protobuf',
    });
    assert.equal(garbage.status, 400);
    assert.match(garbage.json.error.message, /not a protobuf ExportMetricsServiceRequest/);
    const notJson = await ctx.t.request('POST', '/v1/metrics', '{"resourceMetrics": [', {
      ...ctx.t.authHeaders,
      'content-type': 'application/json',
    });
    assert.equal(notJson.status, 400);
  });
});
