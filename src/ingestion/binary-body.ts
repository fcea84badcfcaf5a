import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AVRO_CONTENT_TYPES } from './avro.js';

/** Prometheus remote write: the one route whose body is snappy-compressed (its decoder undoes it). */
export const REMOTE_WRITE_ROUTE = '/api/v1/write';
export const PROTOBUF_CONTENT_TYPE = 'application/x-protobuf';

/**
 * Binary bodies (protobuf for remote write and OTLP, Avro for the per-app route) reach their
 * handlers as Buffers. Only routes that list these types in `@Access(..., {contentTypes})` get
 * past the front door with them (415 elsewhere, before the body is read).
 */
export function installBinaryBodies(fastify: FastifyInstance): void {
  for (const type of [PROTOBUF_CONTENT_TYPE, ...AVRO_CONTENT_TYPES]) {
    if (fastify.hasContentTypeParser(type)) fastify.removeContentTypeParser(type);
    fastify.addContentTypeParser(type, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  }
}

/**
 * `Content-Encoding: snappy` (in any case) is remote write's own framing, decoded by its decoder
 * (with the decoded size bounded by INGEST_MAX_BODY_BYTES): on that route the preParsing hook
 * passes it through and refuses every other encoding before decoding anything (gzip too: 415, as
 * for a valid gzip body); elsewhere snappy is refused like any other unknown encoding.
 */
export const isRemoteWrite = (req: FastifyRequest): boolean => req.routeOptions?.url === REMOTE_WRITE_ROUTE;
