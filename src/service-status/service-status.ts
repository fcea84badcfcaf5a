import { invalidRequest } from '../common/errors.js';
import { isObject, Json, jsonObject, name, Problems, text, timestamp, TimeWindow } from '../common/input.js';
import { EventLevel, KINDS, NewEvent } from '../events/event-input.js';

/**
 * Service status reports (system-monitor-integration.md "Service Status Updates") and the uptime
 * arithmetic over status changes. Pure.
 */

export const SERVICE_STATUSES = ['up', 'down', 'unknown'] as const;
export type ServiceStatus = (typeof SERVICE_STATUSES)[number];

export interface ServiceReport {
  name: string;
  status: ServiceStatus;
  endpoint: string | null;
  ttlSeconds: number | null;
  metadata: Json | null;
  time: number;
}

export const MAX_TTL_SECONDS = 30 * 86_400;

export function decodeServiceReport(body: unknown, w: TimeWindow): ServiceReport {
  if (!isObject(body)) throw invalidRequest('Request body must be a JSON object {name, status, endpoint?}');
  const p = new Problems();
  const n = name(p, body.name, 'name');
  const raw = text(p, body.status, 'status', { max: 16, required: true });
  const status =
    raw === undefined
      ? undefined
      : (SERVICE_STATUSES as readonly string[]).includes(raw.toLowerCase())
        ? (raw.toLowerCase() as ServiceStatus)
        : p.add('status', `must be one of up, down, unknown (got ${JSON.stringify(raw)})`);
  // Not fetched by Timescope, so not a URL check: the reference's own example (`http://your-service:port`) is no valid URL.
  const endpoint = text(p, body.endpoint, 'endpoint', { max: 2_048 }) ?? null;
  let ttl: number | null = null;
  if (body.ttl_seconds !== undefined && body.ttl_seconds !== null) {
    if (
      typeof body.ttl_seconds !== 'number' ||
      !Number.isInteger(body.ttl_seconds) ||
      body.ttl_seconds < 1 ||
      body.ttl_seconds > MAX_TTL_SECONDS
    ) {
      p.add('ttl_seconds', `must be an integer from 1 to ${MAX_TTL_SECONDS}`);
    } else ttl = body.ttl_seconds;
  }
  const metadata = body.metadata === undefined ? null : jsonObject(p, body.metadata, 'metadata');
  const time = timestamp(p, body.timestamp, 'timestamp', w);
  p.throwIfAny();
  return { name: n!, status: status!, endpoint, ttlSeconds: ttl, metadata: metadata ?? null, time: time! };
}

const LEVEL: Record<ServiceStatus, EventLevel> = { up: 'info', down: 'error', unknown: 'warn' };

export type ChangeReason = 'registered' | 'reported' | 'ttl_expired' | 'removed';

export function serviceEvent(
  service: string,
  status: ServiceStatus,
  previous: ServiceStatus | null,
  reason: ChangeReason,
  time: number,
  extra: Json = {},
): NewEvent {
  const message =
    reason === 'removed'
      ? `service ${service} removed (was ${previous})`
      : reason === 'ttl_expired'
        ? `service ${service} is unknown: not heard from within its TTL (was ${previous})`
        : previous
          ? `service ${service} is ${status} (was ${previous})`
          : `service ${service} registered: ${status}`;
  return {
    time,
    kind: KINDS.serviceStatus,
    source: service,
    level: reason === 'removed' ? 'info' : LEVEL[status],
    message,
    attributes: {
      service,
      status: reason === 'removed' ? 'removed' : status,
      previous_status: previous,
      reason,
      ...extra,
    },
  };
}

export interface StatusChange {
  time: number;
  /** `removed` ends the record of a service. */
  status: ServiceStatus | 'removed';
}

export interface Availability {
  /** Seconds in [from, to) the service was up. */
  up_seconds: number;
  /** Seconds in [from, to) whose status is known (up or down); `unknown` and before the first report do not count. */
  known_seconds: number;
  /** up / known, or null when nothing is known. */
  ratio: number | null;
}

/**
 * Availability over [from, to) from status changes in time order (the one before `from`, if any,
 * sets the state at `from`): time up over time with a known status. Time spent `unknown` (silent
 * past the TTL) counts as neither up nor down, so a service is not blamed for our own blind spot.
 */
export function availability(changes: readonly StatusChange[], from: number, to: number): Availability {
  let up = 0,
    known = 0;
  let state: StatusChange['status'] | null = null;
  let since = from;
  const close = (until: number) => {
    const d = Math.max(0, Math.min(until, to) - Math.max(since, from));
    if (state === 'up') up += d;
    if (state === 'up' || state === 'down') known += d;
  };
  for (const c of changes) {
    if (c.time >= to) break;
    if (c.time > since) close(c.time);
    state = c.status;
    since = Math.max(c.time, from);
  }
  close(to);
  return {
    up_seconds: Math.round(up / 1000),
    known_seconds: Math.round(known / 1000),
    ratio: known > 0 ? Math.round((up / known) * 1e6) / 1e6 : null,
  };
}

/** `http://host:8080/x` → 8080; the scheme's default port; null when there is no telling. */
export function endpointPort(endpoint: string | null): number | null {
  if (!endpoint) return null;
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:\[[^\]]*\]|[^/:?#]*)(?::(\d{1,5}))?(?:[/?#]|$)/i.exec(endpoint);
  if (!m) return null;
  if (m[1]) return Number(m[1]) <= 65535 ? Number(m[1]) : null;
  const scheme = endpoint.slice(0, endpoint.indexOf(':')).toLowerCase();
  return scheme === 'https' || scheme === 'wss' ? 443 : scheme === 'http' || scheme === 'ws' ? 80 : null;
}
