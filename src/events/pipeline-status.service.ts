import { Injectable } from '@nestjs/common';
import { invalidQuery } from '../common/errors.js';
import { listParam } from '../common/input.js';
import { Database } from '../database/database.js';
import { EventsService } from './events.service.js';
import { decodeStatusReport, PIPELINE_STATUSES, statusEvent } from './pipeline-status.js';
import { PipelineStatusRepository, PipelineStatusRow } from './pipeline-status.repository.js';

const view = (r: PipelineStatusRow) => ({
  pipeline: r.pipeline,
  pipeline_type: r.pipeline_type,
  status: r.status,
  service: r.service,
  message: r.message,
  metadata: r.metadata,
  updated_at: r.updated_at.toISOString(),
  status_since: r.status_since.toISOString(),
  reports: r.reports,
});

/**
 * Pipeline status reports: each is stored as an event (kind pipeline_status) and moves the latest
 * status of its pipeline, in one transaction. `report()` takes the raw body so that any route
 * (POST /api/v1/pipelines/status, or the system-monitor client's POST /api/v1/pipelines/ with a
 * `pipeline_type` body) can hand it over.
 */
@Injectable()
export class PipelineStatusService {
  constructor(
    private readonly repo: PipelineStatusRepository,
    private readonly events: EventsService,
    private readonly database: Database,
  ) {}

  async report(body: unknown) {
    const r = decodeStatusReport(body, this.events.window());
    await this.events.prepare([r.time]);
    const { row, event } = await this.database.generalTransaction(async (c) => {
      const before = await this.repo.lock(c, r.pipeline);
      const row = await this.repo.upsert(c, r);
      const [event] = await this.events.record([statusEvent(r, before?.status ?? null)], c);
      return { row, event };
    });
    return { status: 'success', pipeline: view(row), event_id: event.id };
  }

  async list(q: Record<string, unknown>) {
    const statuses = listParam(q.status, 'status');
    for (const s of statuses ?? [])
      if (!(PIPELINE_STATUSES as readonly string[]).includes(s))
        throw invalidQuery('status', `status must be one of ${PIPELINE_STATUSES.join(', ')}`);
    const rows = await this.repo.list({ statuses, types: listParam(q.pipeline_type, 'pipeline_type') });
    const counts = Object.fromEntries(PIPELINE_STATUSES.map((s) => [s, rows.filter((x) => x.status === s).length]));
    return { pipelines: rows.map(view), total: rows.length, counts };
  }
}
