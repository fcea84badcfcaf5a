import { Injectable, OnModuleInit } from '@nestjs/common';
import { notFound } from '../common/errors.js';
import { DAY, toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import { KINDS } from '../events/event-input.js';
import { EventsService } from '../events/events.service.js';
import { JobsService } from '../jobs/jobs.service.js';
import {
  availability,
  decodeServiceReport,
  endpointPort,
  serviceEvent,
  ServiceStatus,
  StatusChange,
} from './service-status.js';
import { ServiceRow, ServiceStatusRepository } from './service-status.repository.js';

const REFERENCE_STATUS: Record<ServiceStatus, string> = { up: 'running', down: 'stopped', unknown: 'unknown' };
const COLLECTOR_API_STATUS: Record<ServiceStatus, string> = { up: 'healthy', down: 'unhealthy', unknown: 'unknown' };

/**
 * Services report their status (up, down, unknown); one silent past its TTL (ttl_seconds, default
 * SERVICE_TTL_SECONDS) turns unknown. Every change is an event of kind service_status, and uptime
 * and 24-hour availability are computed from those events.
 */
@Injectable()
export class ServiceRegistry implements OnModuleInit {
  private clock: () => number = Date.now;

  constructor(
    private readonly repo: ServiceStatusRepository,
    private readonly events: EventsService,
    private readonly database: Database,
    private readonly jobs: JobsService,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.jobs.register({
      name: 'service-ttl',
      description: 'Marks services not heard from within their TTL as unknown (and records the change as an event)',
      every: () => Math.min(10_000, Math.max(1_000, (this.config.services.ttlSeconds * 1000) / 6)),
      run: async () => ({ expired: await this.expire() }),
    });
  }

  /** Test seam: the time used for reports without a timestamp and for TTL expiry. */
  useClock(clock: () => number): void {
    this.clock = clock;
  }

  /** POST /api/v1/services: registers or updates a service; a changed status is recorded as an event. */
  async report(body: unknown) {
    const r = decodeServiceReport(body, this.events.window(this.clock()));
    await this.events.prepare([r.time]);
    return this.database.generalTransaction(async (c) => {
      const before = await this.repo.lock(c, r.name);
      const row = await this.repo.upsert(c, r, r.ttlSeconds ?? before?.ttl_seconds ?? this.config.services.ttlSeconds);
      const changed = !before || before.status !== row.status;
      if (changed) {
        await this.events.record(
          [
            serviceEvent(row.name, row.status, before?.status ?? null, before ? 'reported' : 'registered', r.time, {
              endpoint: row.endpoint,
            }),
          ],
          c,
        );
      }
      return {
        status: 'success',
        created: !before,
        changed,
        previous_status: before?.status ?? null,
        service: this.view(row, this.clock()),
      };
    });
  }

  /** Turns services silent past their TTL unknown; returns how many. */
  async expire(): Promise<number> {
    const now = this.clock();
    await this.events.prepare([now]);
    return this.database.generalTransaction(async (c) => {
      const expired = await this.repo.expire(c, now);
      await this.events.record(
        expired.map((s) =>
          serviceEvent(s.name, 'unknown', s.previous, 'ttl_expired', now, {
            endpoint: s.endpoint,
            last_seen: s.last_seen.toISOString(),
            ttl_seconds: s.ttl_seconds,
          }),
        ),
        c,
      );
      return expired.length;
    });
  }

  async list() {
    const now = this.clock();
    const rows = await this.repo.list();
    const avail = await this.availability(
      rows.map((r) => r.name),
      now,
    );
    const services = rows.map((r) => ({ ...this.view(r, now), availability_24h: avail.get(r.name) ?? null }));
    const counts = { up: 0, down: 0, unknown: 0 };
    for (const s of rows) counts[s.status]++;
    return { services, total: services.length, counts };
  }

  async get(name: string) {
    const row = await this.repo.get(name);
    if (!row) throw notFound(`No service named ${name}`, { name });
    const now = this.clock();
    return { ...this.view(row, now), availability_24h: (await this.availability([name], now)).get(name) ?? null };
  }

  async remove(name: string): Promise<void> {
    const now = this.clock();
    await this.events.prepare([now]);
    const removed = await this.database.generalTransaction(async (c) => {
      const row = await this.repo.delete(c, name);
      if (row) await this.events.record([serviceEvent(name, row.status, row.status, 'removed', now)], c);
      return row;
    });
    if (!removed) throw notFound(`No service named ${name}`, { name });
  }

  /** GET /api/v1/monitoring/status (monitoring-api.md "Service Status"): running, stopped or unknown, with uptime. */
  async monitoringStatus() {
    const { services } = await this.list();
    return {
      services: services.map((s) => ({
        name: s.name,
        status: REFERENCE_STATUS[s.status],
        uptime_seconds: s.uptime_seconds,
        port: endpointPort(s.endpoint),
        endpoint: s.endpoint,
        last_seen: s.last_seen,
        availability_24h: s.availability_24h?.ratio ?? null,
      })),
      timestamp: toIso(this.clock()),
    };
  }

  /**
   * collector-api.md (first half), GET /metrics, its `services` part: by name, healthy, unhealthy
   * or unknown, and when the service last reported (`response_time_ms` is null: Timescope is told
   * a service's status, it does not probe it).
   */
  async collectorApiServices() {
    const rows = await this.repo.list();
    return Object.fromEntries(
      rows.map((r) => [
        r.name,
        { status: COLLECTOR_API_STATUS[r.status], response_time_ms: null, last_check: r.last_seen.toISOString() },
      ]),
    );
  }

  private view(r: ServiceRow, now: number) {
    const expires = r.last_seen.getTime() + r.ttl_seconds * 1000;
    return {
      name: r.name,
      status: r.status,
      endpoint: r.endpoint,
      metadata: r.metadata,
      // Time in the current `up` spell; 0 while down or unknown.
      uptime_seconds: r.status === 'up' ? Math.max(0, Math.floor((now - r.status_since.getTime()) / 1000)) : 0,
      status_since: r.status_since.toISOString(),
      last_seen: r.last_seen.toISOString(),
      ttl_seconds: r.ttl_seconds,
      expires_at: r.status === 'unknown' ? null : new Date(expires).toISOString(),
      registered_at: r.registered_at.toISOString(),
      reports: r.reports,
    };
  }

  private async availability(names: string[], now: number) {
    const from = now - DAY;
    const history = await this.events.history(KINDS.serviceStatus, names, from, now);
    const bySource = new Map<string, StatusChange[]>();
    for (const e of history) {
      const status = e.attributes.status as StatusChange['status'];
      const list = bySource.get(e.source!) ?? [];
      // A service removed and registered again starts afresh.
      if (e.attributes.reason === 'registered') list.length = 0;
      list.push({ time: e.time, status });
      bySource.set(e.source!, list);
    }
    return new Map(names.map((n) => [n, { window: '24h', ...availability(bySource.get(n) ?? [], from, now) }]));
  }
}
