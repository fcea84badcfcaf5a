import { Logger } from '@nestjs/common';
import { createLogger } from '../common/logger.js';
import { loadConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import type { EmbeddedServer } from '../database/embedded.js';
import { migrate } from '../database/migrator.js';

/** `make migrate`: applies pending migrations to DATABASE_URL (or to the embedded database when unset), then exits. */
async function main(): Promise<void> {
  let config = loadConfig();
  Logger.overrideLogger(createLogger(config));
  let embedded: EmbeddedServer | undefined;
  if (!config.databaseUrl) {
    // While `make run` serves this DATA_DIR, migrate through its server (as a guest); otherwise start it for the run.
    const { useEmbeddedPostgres } = await import('../database/embedded.js');
    embedded = await useEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
    config = { ...config, databaseUrl: embedded.url };
  }
  const database = await Database.open(config, config.databaseUrl!);
  try {
    const { flavour, applied } = await database.withWriteClient((c) => migrate(c, config.timescaledb));
    new Logger('migrate').log(`${applied.length} migration(s) applied; flavour ${flavour}`);
  } finally {
    await database.close();
    await embedded?.stop();
  }
}

main().catch((err) => {
  console.error(`migration failed: ${(err as Error)?.message ?? err}`);
  process.exit(1);
});
