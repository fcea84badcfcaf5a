import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database, Queryable } from '../database/database.js';
import type { ServiceReport, ServiceStatus } from './service-status.js';

export interface ServiceRow {
  name: string;
  status: ServiceStatus;
  endpoint: string | null;
  metadata: Record<string, unknown>;
  ttl_seconds: number;
  registered_at: Date;
  last_seen: Date;
  status_since: Date;
  reports: number;
}

const COLUMNS = 'name, status, endpoint, metadata, ttl_seconds, registered_at, last_seen, status_since, reports';

/** All SQL of the services table. */
@Injectable()
export class ServiceStatusRepository {
  constructor(private readonly database: Database) {}

  async lock(client: Queryable, name: string): Promise<ServiceRow | undefined> {
    return (await client.query<ServiceRow>(`SELECT ${COLUMNS} FROM services WHERE name = $1 FOR UPDATE`, [name]))
      .rows[0];
  }

  /** Registers or updates a service; a report older than the last one only counts as a report. */
  async upsert(client: Queryable, r: ServiceReport, ttlSeconds: number): Promise<ServiceRow> {
    const res = await client.query<ServiceRow>(
      `INSERT INTO services (name, status, endpoint, metadata, ttl_seconds, registered_at, last_seen, status_since)
       VALUES ($1, $2, $3, COALESCE($4::jsonb, '{}'), $5, $6, $6, $6)
       ON CONFLICT (name) DO UPDATE SET
         status = EXCLUDED.status,
         endpoint = COALESCE(EXCLUDED.endpoint, services.endpoint),
         metadata = COALESCE($4::jsonb, services.metadata),
         ttl_seconds = $5,
         last_seen = EXCLUDED.last_seen,
         status_since = CASE WHEN services.status = EXCLUDED.status THEN services.status_since ELSE EXCLUDED.last_seen END,
         reports = services.reports + 1
       WHERE services.last_seen <= EXCLUDED.last_seen
       RETURNING ${COLUMNS}`,
      [
        r.name,
        r.status,
        r.endpoint,
        r.metadata === null ? null : JSON.stringify(r.metadata),
        ttlSeconds,
        toIso(r.time),
      ],
    );
    if (res.rows[0]) return res.rows[0];
    await client.query(`UPDATE services SET reports = reports + 1 WHERE name = $1`, [r.name]);
    return (await this.lock(client, r.name))!;
  }

  /** Services silent past their TTL turn unknown; returns them with the status they had. */
  async expire(client: Queryable, now: number): Promise<Array<ServiceRow & { previous: ServiceStatus }>> {
    const r = await client.query<ServiceRow & { previous: ServiceStatus }>(
      `WITH expired AS (
         SELECT name, status FROM services
         WHERE status <> 'unknown' AND last_seen + ttl_seconds * interval '1 second' < $1::timestamptz
         FOR UPDATE SKIP LOCKED)
       UPDATE services s SET status = 'unknown', status_since = $1::timestamptz
       FROM expired e WHERE s.name = e.name
       RETURNING ${COLUMNS.split(', ')
         .map((c) => `s.${c}`)
         .join(', ')}, e.status AS previous`,
      [toIso(now)],
    );
    return r.rows;
  }

  async list(): Promise<ServiceRow[]> {
    return (await this.database.readPool.query<ServiceRow>(`SELECT ${COLUMNS} FROM services ORDER BY name LIMIT 10000`))
      .rows;
  }

  async get(name: string): Promise<ServiceRow | undefined> {
    return (await this.database.readPool.query<ServiceRow>(`SELECT ${COLUMNS} FROM services WHERE name = $1`, [name]))
      .rows[0];
  }

  async delete(client: Queryable, name: string): Promise<ServiceRow | undefined> {
    return (await client.query<ServiceRow>(`DELETE FROM services WHERE name = $1 RETURNING ${COLUMNS}`, [name]))
      .rows[0];
  }
}
