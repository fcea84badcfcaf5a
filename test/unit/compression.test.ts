import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMPRESSIBLE_TYPES, COMPRESSION } from '../../src/common/compression.js';

describe('which answers are compressed', () => {
  it('text and JSON types, never event streams, Parquet, protobuf or other binary types', () => {
    for (const t of [
      'application/json; charset=utf-8',
      'application/json',
      'application/problem+json',
      'application/vnd.oai.openapi+json;charset=utf-8',
      'application/x-ndjson; charset=utf-8',
      'text/csv; charset=utf-8',
      'text/plain; version=0.0.4; charset=utf-8',
      'text/html; charset=utf-8',
      'application/openmetrics-text; version=1.0.0; charset=utf-8',
    ])
      assert.ok(COMPRESSIBLE_TYPES.test(t), t);
    for (const t of [
      'text/event-stream; charset=utf-8',
      'text/event-stream',
      'application/vnd.apache.parquet',
      'application/x-protobuf',
      'application/octet-stream',
      'application/gzip',
      'application/avro',
      'image/png',
      'application/jsonx',
    ])
      assert.ok(!COMPRESSIBLE_TYPES.test(t), t);
  });
  it('br, gzip and deflate from 1 KB, answers only (request bodies have their own hook)', () => {
    assert.deepEqual(COMPRESSION.encodings, ['br', 'gzip', 'deflate']);
    assert.equal(COMPRESSION.threshold, 1024);
    assert.equal(COMPRESSION.globalDecompression, false);
  });
});
