import 'reflect-metadata';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply } from 'fastify';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import fastifyCompress from '@fastify/compress';
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { AppModule } from './app.module.js';
import { installBinaryBodies, isRemoteWrite } from './ingestion/binary-body.js';
import { remoteWriteEncodingProblem } from './ingestion/remote-write.js';
import { FrontDoor } from './auth/front-door.js';
import { FrontDoorWsAdapter } from './auth/ws-adapter.js';
import { COMPRESSION } from './common/compression.js';
import { ErrorEnvelopeFilter, sendError } from './common/error-envelope.js';
import { ApiError } from './common/errors.js';
import { createLogger } from './common/logger.js';
import { installJsonParser } from './common/json-body.js';
import { installLineProtocol } from './ingestion/line-protocol.http.js';
import { IngestionService } from './ingestion/ingestion.service.js';
import { installDrain } from './common/graceful-shutdown.js';
import { referenceUrl } from './common/reference-urls.js';
import { VERSION } from './common/version.js';
import type { AppConfig } from './config/config.js';
import { withStoredSettings } from './settings/boot.js';
import { finishDocument } from './openapi/document.js';
import { installQueryParameterRule } from './openapi/unknown-query.js';
import { tagFilterGuard } from './query/query-spec.js';

/**
 * Builds the NestJS application on fastify, initialised but not listening. `main.ts` and the tests
 * both use it, so tests exercise exactly the app that runs.
 */
export async function createApp(
  config: AppConfig,
  logger: ConsoleLogger | false = createLogger(config),
): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: config.ingest.maxBodyBytes,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    // The system-monitor integration guide's reports at its own base URL (reference-urls.ts).
    rewriteUrl: (req: IncomingMessage) => referenceUrl(req.method, req.url),
    // Errors fastify meets before any route (a path that is not valid percent-encoding) get the envelope too.
    frameworkErrors: (error: Error, _req: unknown, reply: FastifyReply) => sendError(reply, error, new Logger('http')),
    requestTimeout: 120_000,
    return503OnClosing: true,
    // app.close() cuts what is still connected (closeGracefully has let accepted requests finish
    // first), so that a stalled client cannot hold the shutdown until the forced exit.
    forceCloseConnections: true,
    logger: false,
  });
  const effective = await withStoredSettings(config); // stored settings over environment over defaults
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(effective), adapter, {
    logger: logger === false ? false : logger,
    abortOnError: false,
    bodyParser: false, // JSON only, by installJsonParser below (Nest's default would also take form bodies)
  });
  // Also sees fastify's own errors (body parsing, limits, media types): Nest routes them through its filters.
  app.useGlobalFilters(new ErrorEnvelopeFilter());
  const fastify = app.getHttpAdapter().getInstance();
  installDrain(app); // requests in flight, for closeGracefully (main.ts)
  // The front door (keys, scopes, rate limits, content types) runs before any body is read.
  const door = app.get(FrontDoor);
  fastify.addHook('onRequest', (req, reply) => door.onRequest(req, reply));
  fastify.addHook('preSerialization', async (req, _reply, payload) => door.answer(req, payload));
  fastify.addHook('onRoute', (route) => door.registerRoute(route));
  // Only JSON unless a route says otherwise: a text/plain body is a 415, not a string handed to a JSON handler.
  fastify.removeContentTypeParser('text/plain');
  // Large JSON bodies one at a time, so a health check never waits behind several; the ingest
  // bodies of /api/v1/metrics(/batch) read by their scanner when they have a common shape, and
  // large ingest and query bodies refused from their bytes when a point has too many tags or a
  // query too many tag filters.
  const ingestion = app.get(IngestionService);
  installJsonParser(fastify, {
    fastPaths: ingestion.jsonFastPaths(),
    guards: {
      ...ingestion.jsonGuards(),
      '/api/v1/metrics/query/multi': tagFilterGuard('multi'),
      '/api/v1/metrics/anomalies': tagFilterGuard('single'),
      '/api/v1/metrics/exports': tagFilterGuard('single'),
    },
  });
  installLineProtocol(fastify); // text bodies for the InfluxDB write routes only (/api/v2/write, /write)
  // gzip/deflate request bodies; fastify's bodyLimit then applies to the decompressed bytes.
  fastify.addHook('preParsing', async (req, _reply, payload) => {
    const header = req.headers['content-encoding'];
    if (isRemoteWrite(req)) {
      // Snappy, undone by its decoder; anything else is a 415 before a byte is decoded.
      const problem = remoteWriteEncodingProblem(header);
      if (problem) throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', problem, { header: 'content-encoding' });
      return payload;
    }
    const enc = header?.toLowerCase(); // content codings are case-insensitive (RFC 9110)
    if (!enc || enc === 'identity') return payload;
    if (enc !== 'gzip' && enc !== 'x-gzip' && enc !== 'deflate') {
      throw new ApiError(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `Content-Encoding ${enc} is not supported (use gzip, deflate or none)`,
      );
    }
    return decodedBody(payload, enc === 'deflate' ? createInflate() : createGunzip(), header as string);
  });
  installBinaryBodies(fastify); // protobuf (remote write, OTLP) and Avro bodies as Buffers, on the routes that declare them
  // Compressed answers (before any route exists: the plugin hooks each route as it is added).
  await app.register(fastifyCompress, COMPRESSION);
  const doc = openApiDocument(app);
  // Unknown query parameters are a 400 naming them, per route from the parameters the document declares.
  installQueryParameterRule(fastify, doc);
  SwaggerModule.setup('swagger-ui', app, doc, { jsonDocumentUrl: 'swagger-ui/openapi.json' });
  // WebSocket gateways (/ws/metrics) on the HTTP server's port.
  app.useWebSocketAdapter(new FrontDoorWsAdapter(app, door));
  await app.init();
  return app;
}

/**
 * The body as `decoder` (gunzip or inflate) undoes it. A body that is not of that encoding is a 400
 * in the envelope saying so (zlib's own message, "incorrect header check", named nothing), not
 * whatever error zlib raises. fastify compares Content-Length with `receivedEncodedLength`.
 */
function decodedBody(payload: Readable, decoder: Transform, encoding: string): Readable {
  const decoded = new PassThrough() as PassThrough & { receivedEncodedLength: number };
  decoded.receivedEncodedLength = 0;
  payload.on('data', (chunk: Buffer) => (decoded.receivedEncodedLength += chunk.length));
  decoder.on('error', (err) =>
    decoded.destroy(
      new ApiError(
        400,
        'INVALID_REQUEST',
        `Request body could not be decoded as Content-Encoding ${encoding}: ${err.message}`,
        { header: 'content-encoding' },
      ),
    ),
  );
  payload.pipe(decoder).pipe(decoded);
  return decoded;
}

let builtDocument: OpenAPIObject | undefined;

/**
 * The OpenAPI document (served at /swagger-ui, and the source of the unknown-query-parameter
 * rule). It is a function of the code alone (the controllers and their decorators, fixed once the
 * modules are loaded), not of the configuration, so a process builds it once: scanning every route
 * costs ~50 ms of CPU, paid at every app start by the tests, which start dozens of apps per process.
 * It is frozen: nothing may write to it once built.
 */
function openApiDocument(app: NestFastifyApplication): OpenAPIObject {
  builtDocument ??= deepFreeze(
    finishDocument(
      SwaggerModule.createDocument(
        app,
        new DocumentBuilder()
          .setTitle('Timescope')
          .setDescription('Time-series analytics on PostgreSQL / TimescaleDB')
          .setVersion(VERSION)
          .addBearerAuth(
            {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'tsk_… API key',
              description: 'An API key (`tsk_…`): `make key`, or POST /api/v1/auth/keys',
            },
            'api-key',
          )
          .build(),
      ),
    ),
  );
  return builtDocument;
}

/** Freezes the shared document all the way down, so that a write to it throws instead of leaking into other apps. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
