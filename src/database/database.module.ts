import { Global, Logger, Module } from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { Database } from './database.js';
import { migrate } from './migrator.js';

/** Opens the connections, decides the flavour and applies migrations before anything else starts. */
@Global()
@Module({
  providers: [
    {
      provide: Database,
      inject: [AppConfig],
      useFactory: async (config: AppConfig) => {
        if (!config.databaseUrl)
          throw new Error('DATABASE_URL is not set (main.ts starts the embedded PostgreSQL when it is unset)');
        const database = await Database.open(config, config.databaseUrl);
        try {
          if (config.migrateOnStart) {
            const { flavour } = await database.withWriteClient((c) => migrate(c, config.timescaledb));
            database.info.flavour = flavour;
          } else {
            const r = await database.readPool.query<{ value: 'timescaledb' | 'postgresql' }>(
              `SELECT value FROM timescope_meta WHERE key = 'flavour'`,
            );
            if (!r.rows[0])
              throw new Error('the database has no Timescope schema: run `make migrate` or set MIGRATE_ON_START=true');
            database.info.flavour = r.rows[0].value;
          }
        } catch (err) {
          await database.close();
          throw err;
        }
        new Logger('database').log(
          `connected: ${database.info.flavour}${database.info.pglite ? ' (PGlite)' : ''}, writes by ${database.info.writeMethod === 'copy' ? 'binary COPY' : 'INSERT … unnest'}`,
        );
        return database;
      },
    },
  ],
  exports: [Database],
})
export class DatabaseModule {}
