import { Injectable, OnModuleInit } from '@nestjs/common';
import type { Json, TimeWindow } from '../common/input.js';
import { DAY, toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Database, Queryable } from '../database/database.js';
import { RetentionService } from '../retention/retention.service.js';
import { PartitionService } from '../storage/partitions.js';
import {
  decodeEvents,
  decodeLogs,
  decodePolicyEvents,
  encodeCursor,
  EventFilter,
  KINDS,
  NewEvent,
  parseEventFilter,
  StoredEvent,
} from './event-input.js';
import { EventsRepository } from './events.repository.js';

/**
 * The events table: partitioned by day (plain PostgreSQL) or a hypertable with 1-day chunks
 * (TimescaleDB) on `time`; the retention job drops whole partitions or chunks older than
 * EVENTS_RETENTION_DAYS.
 */
export const EVENTS_TABLE = { table: 'events', timeColumn: 'time', partitionMs: DAY } as const;

export interface EventView {
  id: number;
  timestamp: string;
  kind: string;
  source: string | null;
  level: string;
  message: string;
  attributes: Json;
}

export const eventView = (e: StoredEvent): EventView => ({
  id: e.id,
  timestamp: toIso(e.time),
  kind: e.kind,
  source: e.source,
  level: e.level,
  message: e.message,
  attributes: e.attributes,
});

/**
 * Events: logs, policy events, pipeline status reports, service status changes and alert
 * transitions in one time-partitioned table, with the reference's policy-event and log views
 * over it. Other modules record their events through `record()`.
 */
@Injectable()
export class EventsService implements OnModuleInit {
  constructor(
    private readonly repo: EventsRepository,
    private readonly partitions: PartitionService,
    private readonly retention: RetentionService,
    private readonly database: Database,
    private readonly config: AppConfig,
  ) {
    partitions.register(EVENTS_TABLE.table, EVENTS_TABLE.partitionMs);
  }

  onModuleInit(): void {
    // Whole partitions or chunks older than EVENTS_RETENTION_DAYS go with the retention job.
    this.retention.register({
      table: EVENTS_TABLE.table,
      retentionDays: () => this.config.events.retentionDays,
      description: 'events: logs, policy events, pipeline and service status, alert transitions',
    });
  }

  window(now = Date.now()): TimeWindow {
    return {
      now,
      retentionDays: this.config.events.retentionDays,
      maxFutureMs: this.config.ingest.maxFutureMs,
      retentionSetting: 'EVENTS_RETENTION_DAYS',
    };
  }

  /**
   * Makes the partitions the events need (plain PostgreSQL). Call before a transaction that
   * records events: partition DDL inside it would lock the table until it commits.
   */
  async prepare(times: Iterable<number>): Promise<void> {
    await this.partitions.ensure(EVENTS_TABLE.table, times);
  }

  /** Stores events; with `client`, inside the caller's transaction (after `prepare`). */
  async record(events: readonly NewEvent[], client?: Queryable): Promise<StoredEvent[]> {
    if (!client) await this.prepare(events.map((e) => e.time));
    return this.repo.insert(events, client ?? this.database.writePool);
  }

  async submit(body: unknown) {
    return this.accepted(await this.record(decodeEvents(body, this.window())));
  }

  async submitPolicyEvents(body: unknown) {
    return this.accepted(await this.record(decodePolicyEvents(body, this.window())));
  }

  async submitLogs(body: unknown) {
    return this.accepted(await this.record(decodeLogs(body, this.window())));
  }

  /** GET /api/v1/events: newest first, paged by `next_cursor`. */
  async list(q: Record<string, unknown>) {
    const filter = parseEventFilter(q, Date.now(), {
      kind: 'kind',
      source: 'source',
      level: 'level',
      since: 'since',
      until: 'until',
    });
    const { rows, next_cursor } = await this.page(filter);
    return { events: rows.map(eventView), total: rows.length, next_cursor };
  }

  /** GET /policy/events (collector-api.md "Policy Events"): `limit` (default 50) and `since`. */
  async policyEvents(q: Record<string, unknown>) {
    const filter = parseEventFilter(
      q,
      Date.now(),
      { source: 'source', level: 'level', since: 'since', until: 'until' },
      50,
    );
    filter.kinds = [KINDS.policy];
    const { rows, next_cursor } = await this.page(filter);
    const events = rows.map((e) => {
      const a = e.attributes;
      return {
        id: e.id,
        timestamp: toIso(e.time),
        policy_id: a.policy_id ?? null,
        event_type: a.event_type ?? null,
        target: a.target ?? null,
        result: a.result ?? null,
        details: a.details ?? (Object.keys(a).length ? a : {}),
        source: e.source,
        level: e.level,
        message: e.message,
      };
    });
    return {
      events,
      total: events.length,
      since: filter.since !== undefined ? toIso(filter.since) : null,
      next_cursor,
    };
  }

  /** GET /api/v1/monitoring/logs (monitoring-api.md "Logs"): `level`, `start_time`, `end_time`, `service`, `limit`. */
  async logs(q: Record<string, unknown>) {
    const filter = parseEventFilter(q, Date.now(), {
      source: 'service',
      level: 'level',
      since: 'start_time',
      until: 'end_time',
    });
    filter.kinds = [KINDS.log];
    const { rows, next_cursor } = await this.page(filter);
    const logs = rows.map((e) => ({
      id: e.id,
      timestamp: toIso(e.time),
      level: e.level,
      service: e.source,
      message: e.message,
      metadata: e.attributes,
    }));
    return {
      logs,
      total: logs.length,
      query: {
        level: filter.levels?.join(',') ?? 'all',
        service: filter.sources?.join(',') ?? null,
        start_time: filter.since !== undefined ? toIso(filter.since) : null,
        end_time: filter.until !== undefined ? toIso(filter.until) : null,
        limit: filter.limit,
      },
      next_cursor,
    };
  }

  /** Events of `kind` about `sources` in [from, to) plus the one before `from` per source, oldest first. */
  history(kind: string, sources: readonly string[], from: number, to: number, limit = 10_000): Promise<StoredEvent[]> {
    return sources.length ? this.repo.history(kind, sources, from, to, limit) : Promise.resolve([]);
  }

  private async page(filter: EventFilter): Promise<{ rows: StoredEvent[]; next_cursor: string | null }> {
    const rows = await this.repo.list(filter);
    const more = rows.length > filter.limit;
    if (more) rows.length = filter.limit;
    const last = rows[rows.length - 1];
    return { rows, next_cursor: more && last ? encodeCursor(last.time, last.id) : null };
  }

  private accepted(stored: StoredEvent[]) {
    return { status: 'success', events_accepted: stored.length, events: stored.map(eventView) };
  }
}
