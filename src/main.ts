import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp, createLogger } from './app.factory.js';
import { AppConfig, loadConfig } from './config/config.js';
import { EmbeddedServer, startEmbeddedPostgres } from './database/embedded.js';

/**
 * `make run`: starts Timescope on DATABASE_URL, or on an embedded PostgreSQL under DATA_DIR when
 * DATABASE_URL is unset. Ctrl-C (SIGINT) or SIGTERM: stop taking requests, flush the writer,
 * close the connections, stop the embedded server, exit 0.
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
  if (!config.databaseUrl) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
    config = { ...config, databaseUrl: embedded.url };
    log.log(`using the embedded PostgreSQL (data in ${embedded.dataDir})`);
  }

  let app: Awaited<ReturnType<typeof createApp>> | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.log(`${signal}: shutting down`);
    const force = setTimeout(() => process.exit(1), 45_000);
    force.unref();
    try {
      await app?.close();
      await embedded?.stop();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  try {
    app = await createApp(config, logger);
    await app.listen({ port: config.port, host: config.host });
  } catch (err) {
    log.error(`failed to start: ${(err as Error).message}`);
    await embedded?.stop().catch(() => undefined);
    process.exit(1);
  }
  const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  log.log(`Timescope ${app.getHttpServer().address() ? 'listening' : 'ready'} on http://${shown}:${config.port} (API docs: http://${shown}:${config.port}/swagger-ui)`);
}

main().catch((err) => {
  console.error(`Timescope failed to start: ${(err as Error)?.stack ?? err}`);
  process.exit(1);
});
