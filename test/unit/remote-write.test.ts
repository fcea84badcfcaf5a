import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import snappy from 'snappyjs';
import { BoundedCache } from '../../src/common/bounded-cache.js';
import { ApiError } from '../../src/common/errors.js';
import type { ValidatedSeries } from '../../src/ingestion/collect.js';
import type { DecodeContext } from '../../src/ingestion/decode.js';
import { decodeRemoteWrite, remoteWriteVersionProblem, unsnappy } from '../../src/ingestion/remote-write.js';
import { RwSeries as Series, writeRequest } from '../support/prompb.js';

const NOW = Date.UTC(2024, 0, 15, 10, 30);
const ctx = (over: Partial<DecodeContext['limits']> = {}): DecodeContext => ({
  now: NOW,
  limits: {
    maxPoints: 100,
    maxTags: 4,
    maxNameLength: 50,
    maxTagKeyLength: 16,
    maxTagValueLength: 32,
    maxFutureMs: 600_000,
    retentionDays: 7,
    ...over,
  },
});

const decode = (series: Series[], c = ctx()) => decodeRemoteWrite(writeRequest(series), c);

function rejects(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${e}`);
    return e;
  }
  assert.fail('accepted');
}

const STALE = 'stale' as const;

describe('Prometheus remote write decoder', () => {
  it('maps __name__ to the metric, job to the source, every label to a tag, ms timestamps', () => {
    const { batch, skipped } = decode([
      {
        labels: [
          ['__name__', 'http_requests_total'],
          ['code', '200'],
          ['instance', 'web-1:9090'],
          ['job', 'api'],
        ],
        samples: [
          [10, NOW - 2000],
          [12, NOW - 1000],
        ],
      },
      {
        labels: [
          ['__name__', 'up'],
          ['instance', 'web-1:9090'],
          ['job', 'api'],
        ],
        samples: [[1, NOW - 1000]],
      },
      {
        labels: [
          ['__name__', 'http_requests_total'],
          ['code', '200'],
          ['instance', 'web-1:9090'],
          ['job', 'api'],
        ],
        samples: [[13, NOW]],
      },
    ]);
    assert.deepEqual(skipped, { stale: 0, non_finite: 0, out_of_range: 0, native_histogram: 0 });
    assert.equal(batch.length, 4);
    assert.deepEqual(
      batch.series.map((s) => [s.metric, s.source, s.tags]),
      [
        ['http_requests_total', 'api', { code: '200', instance: 'web-1:9090', job: 'api' }],
        ['up', 'api', { instance: 'web-1:9090', job: 'api' }],
      ],
    );
    assert.deepEqual([...batch.seriesIndex], [0, 0, 1, 0]);
    assert.deepEqual([...batch.times], [NOW - 2000, NOW - 1000, NOW - 1000, NOW]);
    assert.deepEqual([...batch.values], [10, 12, 1, 13]);
  });

  it('uses the source "prometheus" without a job label, and treats an empty label value as no label', () => {
    const { batch } = decode([
      {
        labels: [
          ['__name__', 'job:rate5m'],
          ['env', ''],
          ['region', 'eu'],
        ],
        samples: [[0.5, NOW]],
      },
    ]);
    assert.equal(batch.series[0].source, 'prometheus');
    assert.deepEqual(batch.series[0].tags, { region: 'eu' });
  });

  it('skips stale markers, other NaNs, infinities and native histograms, and counts them; a series of skipped samples only is not made', () => {
    const { batch, skipped } = decode([
      {
        labels: [
          ['__name__', 'a'],
          ['job', 'j'],
        ],
        samples: [
          [1, NOW - 3000],
          [STALE, NOW - 2000],
          [NaN, NOW - 1000],
          [Infinity, NOW],
          [-Infinity, NOW + 1],
          [1e297, NOW + 2],
          [1e296, NOW + 3],
        ],
      },
      {
        labels: [
          ['__name__', 'gone'],
          ['job', 'j'],
        ],
        samples: [[STALE, NOW]],
      },
      {
        labels: [
          ['__name__', 'hist'],
          ['job', 'j'],
        ],
        samples: [],
        histograms: 2,
      },
    ]);
    assert.deepEqual(skipped, { stale: 2, non_finite: 3, out_of_range: 1, native_histogram: 2 });
    assert.equal(batch.length, 2);
    assert.deepEqual([...batch.values], [1, 1e296]);
    assert.deepEqual(
      batch.series.map((s) => s.metric),
      ['a'],
    );
  });

  it('refuses the whole request (400) for a series without __name__, naming it', () => {
    const e = rejects(() =>
      decode([
        {
          labels: [
            ['__name__', 'ok'],
            ['job', 'j'],
          ],
          samples: [[1, NOW]],
        },
        { labels: [['job', 'j']], samples: [[1, NOW]] },
      ]),
    );
    assert.equal(e.getStatus(), 400);
    assert.equal(e.details?.field, 'timeseries[1].labels');
  });

  it('applies the JSON path rules to names, labels and times, all or nothing', () => {
    const cases: Array<[Series, RegExp, RegExp]> = [
      [
        { labels: [['__name__', ':bad']], samples: [[1, NOW]] },
        /^timeseries\[1\]\.labels/,
        /metric name ":bad" must start with a letter/,
      ],
      [{ labels: [['__name__', 'x'.repeat(51)]], samples: [[1, NOW]] }, /^timeseries\[1\]\.labels/, /longer than 50/],
      [
        {
          labels: [
            ['__name__', 'm'],
            ['__meta_x', 'v'],
          ],
          samples: [[1, NOW]],
        },
        /labels/,
        /__\*, constructor and prototype are reserved/,
      ],
      [
        {
          labels: [
            ['__name__', 'm'],
            ['a', '1'],
            ['b', '2'],
            ['c', '3'],
            ['d', '4'],
            ['e', '5'],
          ],
          samples: [[1, NOW]],
        },
        /labels/,
        /more than 4 tags \(INGEST_MAX_TAGS\)/,
      ],
      [
        {
          labels: [
            ['__name__', 'm'],
            ['a', 'v'.repeat(33)],
          ],
          samples: [[1, NOW]],
        },
        /labels/,
        /tag "a" must be 1 to 32 characters/,
      ],
      [
        {
          labels: [
            ['__name__', 'm'],
            ['a', '1'],
            ['a', '2'],
          ],
          samples: [[1, NOW]],
        },
        /labels/,
        /given twice/,
      ],
      [
        {
          labels: [['__name__', 'm']],
          samples: [
            [1, NOW],
            [2, NOW + 3_600_000],
          ],
        },
        /^timeseries\[1\]\.samples\[1\]\.timestamp/,
        /in the future \(INGEST_MAX_FUTURE_SECONDS\)/,
      ],
      [
        { labels: [['__name__', 'm']], samples: [[1, NOW - 30 * 86_400_000]] },
        /^timeseries\[1\]\.samples\[0\]\.timestamp/,
        /older than the retention of 7 days/,
      ],
    ];
    for (const [series, field, message] of cases) {
      // A good series first: nothing of the request is kept when a later one is bad.
      const e = rejects(() =>
        decode([
          {
            labels: [
              ['__name__', 'fine'],
              ['job', 'j'],
            ],
            samples: [[1, NOW]],
          },
          series,
        ]),
      );
      assert.equal(e.getStatus(), 400, e.message);
      assert.match(String(e.details?.field), field, e.message);
      assert.match(e.message, message);
    }
  });

  it('remembers validated series across requests (same batches), never a refused one', () => {
    const cache = new BoundedCache<never>(100) as unknown as ValidatedSeries;
    const series: Series[] = [
      {
        labels: [
          ['__name__', 'm'],
          ['b', '2'],
          ['a', '1'],
          ['job', 'j'],
        ],
        samples: [[1, NOW]],
      },
    ];
    const first = decodeRemoteWrite(writeRequest(series), ctx(), cache).batch;
    const second = decodeRemoteWrite(writeRequest(series), ctx(), cache).batch;
    assert.deepEqual(second.series, first.series);
    assert.deepEqual(first.series[0].tags, { a: '1', b: '2', job: 'j' });
    const bad: Series[] = [
      {
        labels: [
          ['__name__', 'm'],
          ['__b', '2'],
        ],
        samples: [[1, NOW]],
      },
    ];
    for (let i = 0; i < 2; i++)
      assert.equal(rejects(() => decodeRemoteWrite(writeRequest(bad), ctx(), cache)).getStatus(), 400);
    // A cached series still meets the per-request rules on its samples.
    assert.equal(
      rejects(() =>
        decodeRemoteWrite(writeRequest([{ ...series[0], samples: [[1, NOW + 3_600_000]] }]), ctx(), cache),
      ).getStatus(),
      400,
    );
  });

  it('answers 413 past INGEST_MAX_POINTS_PER_REQUEST, counting samples before any work', () => {
    const samples: Array<[number, number]> = Array.from({ length: 101 }, (_, i) => [i, NOW - i]);
    const e = rejects(() => decode([{ labels: [['__name__', 'm']], samples }]));
    assert.equal(e.getStatus(), 413);
    assert.match(e.message, /INGEST_MAX_POINTS_PER_REQUEST/);
  });

  it('refuses bodies that are not snappy or not a WriteRequest with 400, and a decompression past the body limit with 413', () => {
    const good = Buffer.from(
      snappy.compress(Buffer.from(writeRequest([{ labels: [['__name__', 'm']], samples: [[1, NOW]] }]))),
    );
    assert.equal(decodeRemoteWrite(unsnappy(good, 1 << 20), ctx()).batch.length, 1);
    assert.match(
      rejects(() => unsnappy(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 1 << 20)).message,
      /not snappy/,
    );
    assert.equal(rejects(() => unsnappy(Buffer.from([]), 1 << 20)).getStatus(), 400);
    assert.match(rejects(() => unsnappy(good.subarray(0, good.length - 3), 1 << 20)).message, /not valid snappy/);
    const big = Buffer.from(snappy.compress(Buffer.alloc(100_000)));
    const e = rejects(() => unsnappy(big, 50_000));
    assert.equal(e.getStatus(), 413);
    assert.match(e.message, /100000 bytes, more than 50000 \(INGEST_MAX_BODY_BYTES\)/);
    // Snappy-compressed text is not a protobuf WriteRequest.
    const notProto = unsnappy(Buffer.from(snappy.compress(Buffer.from('{"timeseries": []}'))), 1 << 20);
    const p = rejects(() => decodeRemoteWrite(notProto, ctx()));
    assert.equal(p.getStatus(), 400);
    assert.match(p.message, /not a protobuf prometheus\.WriteRequest/);
  });

  it('takes remote write 1.0 and refuses 2.0 by its content type or version header', () => {
    assert.equal(remoteWriteVersionProblem('application/x-protobuf', '0.1.0'), undefined);
    assert.equal(
      remoteWriteVersionProblem('application/x-protobuf;proto=prometheus.WriteRequest', undefined),
      undefined,
    );
    assert.match(
      String(remoteWriteVersionProblem('application/x-protobuf;proto=io.prometheus.write.v2.Request', '2.0.0')),
      /remote write 1\.0/,
    );
    assert.match(String(remoteWriteVersionProblem('application/x-protobuf', '2.0.0')), /2\.0\.0 is not supported/);
  });
});
