import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database, Queryable } from '../database/database.js';
import type { PipelineStatus, StatusReport } from './pipeline-status.js';

export interface PipelineStatusRow {
  pipeline: string;
  pipeline_type: string;
  status: PipelineStatus;
  service: string | null;
  message: string | null;
  metadata: Record<string, unknown>;
  updated_at: Date;
  status_since: Date;
  reports: number;
}

const COLUMNS = 'pipeline, pipeline_type, status, service, message, metadata, updated_at, status_since, reports';

/** Latest status per pipeline (table pipeline_status). */
@Injectable()
export class PipelineStatusRepository {
  constructor(private readonly database: Database) {}

  async lock(client: Queryable, pipeline: string): Promise<PipelineStatusRow | undefined> {
    return (
      await client.query<PipelineStatusRow>(`SELECT ${COLUMNS} FROM pipeline_status WHERE pipeline = $1 FOR UPDATE`, [
        pipeline,
      ])
    ).rows[0];
  }

  /** Applies a report unless a newer one is already stored (reports may arrive out of order). */
  async upsert(client: Queryable, r: StatusReport): Promise<PipelineStatusRow> {
    const res = await client.query<PipelineStatusRow>(
      `INSERT INTO pipeline_status (pipeline, pipeline_type, status, service, message, metadata, updated_at, status_since)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
       ON CONFLICT (pipeline) DO UPDATE SET
         pipeline_type = EXCLUDED.pipeline_type, status = EXCLUDED.status, service = COALESCE(EXCLUDED.service, pipeline_status.service),
         message = EXCLUDED.message, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at,
         status_since = CASE WHEN pipeline_status.status = EXCLUDED.status THEN pipeline_status.status_since ELSE EXCLUDED.updated_at END,
         reports = pipeline_status.reports + 1
       WHERE pipeline_status.updated_at <= EXCLUDED.updated_at
       RETURNING ${COLUMNS}`,
      [r.pipeline, r.pipelineType, r.status, r.service, r.message, JSON.stringify(r.metadata), toIso(r.time)],
    );
    if (res.rows[0]) return res.rows[0];
    await client.query(`UPDATE pipeline_status SET reports = reports + 1 WHERE pipeline = $1`, [r.pipeline]);
    return (await this.lock(client, r.pipeline))!;
  }

  async list(filter: { statuses?: string[]; types?: string[] }): Promise<PipelineStatusRow[]> {
    const r = await this.database.readPool.query<PipelineStatusRow>(
      `SELECT ${COLUMNS} FROM pipeline_status
       WHERE ($1::text[] IS NULL OR status = ANY($1)) AND ($2::text[] IS NULL OR pipeline_type = ANY($2))
       ORDER BY updated_at DESC LIMIT 10000`,
      [filter.statuses ?? null, filter.types ?? null],
    );
    return r.rows;
  }
}
