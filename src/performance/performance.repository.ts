import { Injectable } from '@nestjs/common';
import { Database } from '../database/database.js';

/** The SQL behind GET /api/v1/system/performance: the database's size (compression and the oldest point: StorageCatalog). */
@Injectable()
export class PerformanceRepository {
  constructor(private readonly database: Database) {}

  async databaseSize(): Promise<number> {
    return (await this.database.readPool.query<{ n: number }>(`SELECT pg_database_size(current_database()) AS n`))
      .rows[0].n;
  }
}
