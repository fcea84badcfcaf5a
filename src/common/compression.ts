import { constants as zlibConstants } from 'node:zlib';

/**
 * @fastify/compress options (registered in app.factory.ts). Answers are compressed with br, gzip
 * or deflate, as the client's Accept-Encoding prefers, when the body is at least 1 KB and its type
 * is text or JSON: never text/event-stream (SSE also writes on the raw socket), Parquet, protobuf
 * or any other binary type. Request bodies stay with app.factory.ts's own preParsing hook (it lets
 * snappy through), so the plugin's decompression is off. Every write is flushed, so a streamed
 * export still streams: each chunk the encoder produces leaves compressed at once instead of
 * waiting in zlib's window, and backpressure still reaches the export.
 */
/** Content types worth compressing. */
export const COMPRESSIBLE_TYPES =
  /^\s*(?:text\/(?!event-stream)|application\/(?:[\w.+-]+\+)?json\b|application\/(?:x-)?ndjson\b|application\/openmetrics-text\b)/i;

export const COMPRESSION = {
  global: true,
  globalDecompression: false,
  encodings: ['br', 'gzip', 'deflate'] as Array<'br' | 'gzip' | 'deflate'>,
  threshold: 1024,
  customTypes: COMPRESSIBLE_TYPES,
  zlibOptions: { flush: zlibConstants.Z_SYNC_FLUSH },
  brotliOptions: {
    flush: zlibConstants.BROTLI_OPERATION_FLUSH,
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4 }, // the plugin's default, which these options replace
  },
};
