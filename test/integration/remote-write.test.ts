import assert from 'node:assert/strict';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';
import snappy from 'snappyjs';
import { parseExposition, sampleValue } from '../support/prom-text.js';
import { REMOTE_WRITE_HEADERS, remoteWriteBody, RwSeries } from '../support/prompb.js';
import { describeEachFlavour } from '../support/suite.js';

const T0 = Date.now() - 600_000;

describeEachFlavour(
  'ingest: Prometheus remote write',
  (ctx) => {
    const write = (series: RwSeries[], headers: Record<string, string> = {}) =>
      ctx.t.request('POST', '/api/v1/write', remoteWriteBody(series), {
        ...ctx.t.authHeaders,
        ...REMOTE_WRITE_HEADERS,
        ...headers,
      });
    const rows = async (metric: string) =>
      (
        await ctx.t.sql.query(
          `SELECT source, tags, time, value FROM metrics WHERE metric = $1 ORDER BY time, source, tags::text`,
          [metric],
        )
      ).rows.map((r) => [r.source, r.tags, r.time.getTime(), r.value]);
    const seriesCount = async (metric: string) =>
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series WHERE metric = $1`, [metric])).rows[0].n);
    const scrape = async () => parseExposition((await ctx.t.get('/prometheus-metrics')).body);

    it('stores a snappy WriteRequest and answers 204 after commit: job → source, labels → tags, ms timestamps', async () => {
      const r = await write([
        {
          labels: [
            ['__name__', 'rw_requests_total'],
            ['code', '200'],
            ['instance', 'web-1:9090'],
            ['job', 'api'],
          ],
          samples: [
            [10, T0],
            [12, T0 + 15_000],
          ],
        },
        {
          labels: [
            ['__name__', 'rw_up'],
            ['instance', 'web-1:9090'],
            ['job', 'api'],
          ],
          samples: [[1, T0]],
        },
        {
          labels: [
            ['__name__', 'rw_up'],
            ['instance', 'rule'],
          ],
          samples: [[0, T0]],
        },
      ]);
      assert.equal(r.status, 204, r.body);
      assert.equal(r.body, '');
      assert.deepEqual(await rows('rw_requests_total'), [
        ['api', { code: '200', instance: 'web-1:9090', job: 'api' }, T0, 10],
        ['api', { code: '200', instance: 'web-1:9090', job: 'api' }, T0 + 15_000, 12],
      ]);
      assert.deepEqual(await rows('rw_up'), [
        ['api', { instance: 'web-1:9090', job: 'api' }, T0, 1],
        ['prometheus', { instance: 'rule' }, T0, 0],
      ]);
    });

    it('is idempotent by (series, time): a resend after a 5xx stores each sample once, the last value wins', async () => {
      const series = (v: number): RwSeries[] => [
        {
          labels: [
            ['__name__', 'rw_retry'],
            ['job', 'j'],
          ],
          samples: [0, 1, 2].map((i) => [v + i, T0 + i * 1000] as [number, number]),
        },
      ];
      assert.equal((await write(series(1))).status, 204);
      assert.equal((await write(series(1))).status, 204);
      assert.equal((await write(series(5))).status, 204);
      assert.deepEqual(
        (await rows('rw_retry')).map((r) => r[3]),
        [5, 6, 7],
      );
    });

    it('skips stale markers, NaN, ±Inf and native histograms, counts them, and stores the rest', async () => {
      const before = await scrape();
      const r = await write([
        {
          labels: [
            ['__name__', 'rw_skip'],
            ['job', 'j'],
          ],
          samples: [
            [1, T0],
            ['stale', T0 + 1000],
            [NaN, T0 + 2000],
            [Infinity, T0 + 3000],
            [2, T0 + 4000],
          ],
          histograms: 1,
        },
        {
          labels: [
            ['__name__', 'rw_only_stale'],
            ['job', 'j'],
          ],
          samples: [['stale', T0]],
        },
      ]);
      assert.equal(r.status, 204, r.body);
      assert.deepEqual(
        (await rows('rw_skip')).map((x) => x[3]),
        [1, 2],
      );
      assert.equal(await seriesCount('rw_only_stale'), 0);
      const after = await scrape();
      const moved = (reason: string) =>
        (sampleValue(after, 'timescope_ingest_points_skipped_total', { protocol: 'remote_write', reason }) ?? 0) -
        (sampleValue(before, 'timescope_ingest_points_skipped_total', { protocol: 'remote_write', reason }) ?? 0);
      assert.deepEqual([moved('stale'), moved('non_finite'), moved('native_histogram')], [2, 2, 1]);
      assert.equal(
        (sampleValue(after, 'timescope_ingest_points_committed_total', { protocol: 'remote_write' }) ?? 0) -
          (sampleValue(before, 'timescope_ingest_points_committed_total', { protocol: 'remote_write' }) ?? 0),
        2,
      );
    });

    it('stores nothing of a request with one bad series, not even its new series (400 naming it; Prometheus drops such a batch)', async () => {
      const r = await write([
        {
          labels: [
            ['__name__', 'rw_atomic'],
            ['job', 'j'],
          ],
          samples: [[1, T0]],
        },
        {
          labels: [
            ['__name__', 'rw_atomic'],
            ['job', 'j'],
            ['__tmp', 'x'],
          ],
          samples: [[1, T0]],
        },
      ]);
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.code, 'INVALID_REQUEST');
      assert.equal(r.json.error.details.field, 'timeseries[1].labels');
      assert.match(r.json.error.message, /reserved/);
      assert.equal(await seriesCount('rw_atomic'), 0);
      const future = await write([
        {
          labels: [['__name__', 'rw_atomic']],
          samples: [
            [1, T0],
            [2, Date.now() + 3_600_000],
          ],
        },
      ]);
      assert.equal(future.status, 400);
      assert.match(future.json.error.message, /timeseries\[0\]\.samples\[1\]\.timestamp .* in the future/);
      assert.equal(await seriesCount('rw_atomic'), 0);
    });

    it('takes an ingest key as Bearer or as the password of Basic auth; a read key gets 403, none 401', async () => {
      const body = remoteWriteBody([
        {
          labels: [
            ['__name__', 'rw_auth'],
            ['job', 'j'],
          ],
          samples: [[1, T0]],
        },
      ]);
      const ingest = await ctx.t.key(['ingest']);
      const read = await ctx.t.key(['read']);
      const as = (authorization: string) =>
        ctx.t.request('POST', '/api/v1/write', body, { ...REMOTE_WRITE_HEADERS, authorization });
      assert.equal((await as(`Bearer ${ingest}`)).status, 204);
      assert.equal((await as(`Basic ${Buffer.from(`prometheus:${ingest}`).toString('base64')}`)).status, 204);
      const forbidden = await as(`Bearer ${read}`);
      assert.equal(forbidden.status, 403);
      assert.equal(forbidden.json.error.details.required_scope, 'ingest');
      assert.equal((await as('')).status, 401);
    });

    it('answers 415 for other content types, other encodings and remote write 2.0; snappy is refused on the other routes', async () => {
      const body = remoteWriteBody([{ labels: [['__name__', 'rw_415']], samples: [[1, T0]] }]);
      let r = await ctx.t.request('POST', '/api/v1/write', body, {
        ...ctx.t.authHeaders,
        ...REMOTE_WRITE_HEADERS,
        'content-type': 'application/json',
      });
      assert.equal(r.status, 415);
      // gzip is refused before the body is decoded: a valid gzip body and one that is not gzip alike.
      for (const [encoding, payload] of [
        ['gzip', gzipSync(body)],
        ['gzip', body],
        ['GZIP', Buffer.from('not gzip')],
        ['deflate', body],
        ['identity', body],
      ] as const) {
        r = await ctx.t.request('POST', '/api/v1/write', payload, {
          ...ctx.t.authHeaders,
          ...REMOTE_WRITE_HEADERS,
          'content-encoding': encoding,
        });
        assert.equal(r.status, 415, `${encoding}: ${r.body}`);
        assert.equal(
          r.json.error.message,
          `Remote write bodies are snappy-compressed (Content-Encoding: snappy), not ${encoding}`,
        );
        assert.deepEqual(r.json.error.details, { header: 'content-encoding' });
      }
      r = await ctx.t.request('POST', '/api/v1/write', body, {
        ...ctx.t.authHeaders,
        ...REMOTE_WRITE_HEADERS,
        'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request',
        'x-prometheus-remote-write-version': '2.0.0',
      });
      assert.equal(r.status, 415);
      assert.match(r.json.error.message, /remote write 1\.0/);
      const json = Buffer.from(
        snappy.compress(Buffer.from(JSON.stringify({ source: 's', metrics: [{ name: 'm', value: 1 }] }))),
      );
      r = await ctx.t.request('POST', '/api/v1/metrics', json, {
        ...ctx.t.authHeaders,
        'content-type': 'application/json',
        'content-encoding': 'snappy',
      });
      assert.equal(r.status, 415);
      assert.match(r.json.error.message, /Content-Encoding snappy is not supported/);
      assert.equal(await seriesCount('rw_415'), 0);
    });

    it('reads Content-Encoding snappy in any case', async () => {
      for (const [i, encoding] of ['SNAPPY', 'Snappy'].entries()) {
        const r = await write([{ labels: [['__name__', 'rw_snappy_case']], samples: [[i, T0 + i]] }], {
          'content-encoding': encoding,
        });
        assert.equal(r.status, 204, `${encoding}: ${r.body}`);
      }
      assert.deepEqual(
        (await rows('rw_snappy_case')).map((r) => r[3]),
        [0, 1],
      );
    });

    it('answers 400 for bodies that are not snappy or not a WriteRequest, 413 past the body and point limits', async () => {
      const post = (body: Buffer) =>
        ctx.t.request('POST', '/api/v1/write', body, { ...ctx.t.authHeaders, ...REMOTE_WRITE_HEADERS });
      let r = await post(Buffer.from('not snappy at all'));
      assert.equal(r.status, 400);
      assert.equal(r.json.error.details.field, 'body');
      r = await post(Buffer.from(snappy.compress(Buffer.from('{"timeseries": []}'))));
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, /not a protobuf prometheus\.WriteRequest/);
      // Compresses to a few bytes, decompresses past INGEST_MAX_BODY_BYTES (64 KiB here).
      r = await post(Buffer.from(snappy.compress(Buffer.alloc(200_000))));
      assert.equal(r.status, 413);
      assert.match(r.json.error.message, /INGEST_MAX_BODY_BYTES/);
      const many: RwSeries[] = [
        {
          labels: [['__name__', 'rw_many']],
          samples: Array.from({ length: 1001 }, (_, i) => [i, T0 + i] as [number, number]),
        },
      ];
      r = await write(many);
      assert.equal(r.status, 413);
      assert.match(r.json.error.message, /INGEST_MAX_POINTS_PER_REQUEST/);
      r = await ctx.t.request('POST', '/api/v1/write', undefined, { ...ctx.t.authHeaders });
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, /empty/);
    });
  },
  { INGEST_MAX_BODY_BYTES: '65536', INGEST_MAX_POINTS_PER_REQUEST: '1000' },
);
