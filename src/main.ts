// First: V8's memory settings apply to everything loaded after them.
import './v8-tuning.js';
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { AddressInfo } from 'node:net';
import { closeGracefully } from './common/graceful-shutdown.js';
import { createLogger } from './common/logger.js';
import { AppConfig, loadConfig } from './config/config.js';
import type { EmbeddedServer } from './database/embedded.js';

/** Requests in flight get this long to finish; the writer's flush and the database stop come after. */
const DRAIN_MS = 20_000;
/** Past this, the stop is forced (exit 1). */
const FORCE_EXIT_MS = 45_000;

/**
 * `make run`: starts Timescope on DATABASE_URL, or on an embedded PostgreSQL under DATA_DIR when
 * DATABASE_URL is unset. Ctrl-C (SIGINT) or SIGTERM: stop accepting connections, let the requests
 * already accepted finish, commit what the writer accepted, close the connections, stop the
 * embedded server last, exit 0. A second signal forces the stop (exit 1).
 */
async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const logger = createLogger(config);
  Logger.overrideLogger(logger);
  const log = new Logger('timescope');

  let embedded: EmbeddedServer | undefined;
  let app: NestFastifyApplication | undefined;
  let stopping = false;

  const startup = (async () => {
    // The application's modules (most of a start's CPU) load while the embedded server starts; a
    // start refused at the data directory's lock exits before they are all loaded.
    const factory = import('./app.factory.js');
    factory.catch(() => undefined); // a failed import is reported where it is awaited
    if (!config.databaseUrl) {
      // Loaded only here: with DATABASE_URL set, nothing of the embedded server is imported.
      const { startEmbeddedPostgres } = await import('./database/embedded.js');
      embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
      config = { ...config, databaseUrl: embedded.url };
      log.log(`using the embedded PostgreSQL (data in ${embedded.dataDir})`);
    }
    if (stopping) return;
    app = await (await factory).createApp(config, logger);
    if (stopping) return;
    await app.listen({ port: config.port, host: config.host });
    const port = (app.getHttpServer().address() as AddressInfo | null)?.port ?? config.port;
    const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    log.log(`Timescope listening on http://${shown}:${port} (API docs: http://${shown}:${port}/swagger-ui)`);
  })();
  startup.catch(async (err) => {
    log.error(`failed to start: ${(err as Error)?.message ?? err}`);
    await app?.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    process.exit(1);
  });

  const forceExit = (why: string) => {
    log.error(why);
    embedded?.stopNow();
    process.exit(1);
  };
  const stop = async (signal: string) => {
    if (stopping) return forceExit(`${signal} again: stopping now, without waiting for requests in flight`);
    stopping = true;
    log.log(`${signal}: shutting down (a second ${signal} forces it)`);
    setTimeout(
      () => forceExit(`shutdown took longer than ${FORCE_EXIT_MS / 1000} s: forcing it`),
      FORCE_EXIT_MS,
    ).unref();
    // A signal during startup: let it finish (or fail, which exits on its own), then stop.
    await startup.catch(() => new Promise<never>(() => {}));
    let code = 0;
    try {
      if (app) await closeGracefully(app, { drainMs: DRAIN_MS, log: (m) => log.log(m) });
    } catch (err) {
      code = 1;
      log.error(`closing the service failed: ${(err as Error)?.message ?? err}`);
    }
    try {
      await embedded?.stop(); // last: the service no longer uses it
    } catch (err) {
      code = 1;
      log.error(`stopping the embedded PostgreSQL failed: ${(err as Error)?.message ?? err}`);
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  console.error(`Timescope failed to start: ${(err as Error)?.stack ?? err}`);
  process.exit(1);
});
