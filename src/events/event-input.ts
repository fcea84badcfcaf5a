import { fieldErrors, invalidQuery, invalidRequest, payloadTooLarge } from '../common/errors.js';
import {
  intParam,
  isObject,
  Json,
  jsonObject,
  listParam,
  name,
  Problems,
  text,
  timestamp,
  TimeWindow,
} from '../common/input.js';
import { parseQueryTime, queryTimeError, toIso } from '../common/time.js';

/**
 * Events in, events out. Pure: bodies → validated NewEvents (all or nothing, every problem named),
 * query strings → an EventFilter. No NestJS, no database.
 */

export const EVENT_LEVELS = ['debug', 'info', 'warn', 'error', 'critical'] as const;
export type EventLevel = (typeof EVENT_LEVELS)[number];

/** Kinds Timescope itself writes; clients may use any other lower-case kind too. */
export const KINDS = {
  log: 'log',
  policy: 'policy',
  pipelineStatus: 'pipeline_status',
  serviceStatus: 'service_status',
  alert: 'alert',
} as const;

const LEVEL_ALIASES: Record<string, EventLevel> = {
  debug: 'debug',
  trace: 'debug',
  info: 'info',
  information: 'info',
  notice: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  err: 'error',
  critical: 'critical',
  crit: 'critical',
  fatal: 'critical',
  alert: 'critical',
  emergency: 'critical',
};

const KIND = /^[a-z][a-z0-9_.-]{0,63}$/;
export const MAX_EVENTS_PER_REQUEST = 1_000;
const MAX_MESSAGE = 8_192;

export interface NewEvent {
  /** Epoch ms (whole milliseconds). */
  time: number;
  kind: string;
  source: string | null;
  level: EventLevel;
  message: string;
  attributes: Json;
}

export interface StoredEvent extends NewEvent {
  id: number;
}

/** `warning` → `warn`, `fatal` → `critical`, … or undefined. */
export function normaliseLevel(v: unknown): EventLevel | undefined {
  return typeof v === 'string' ? LEVEL_ALIASES[v.trim().toLowerCase()] : undefined;
}

function level(p: Problems, v: unknown, field: string, def: EventLevel = 'info'): EventLevel | undefined {
  if (v === undefined || v === null) return def;
  const l = normaliseLevel(v);
  return l ?? p.add(field, `must be one of ${EVENT_LEVELS.join(', ')} (got ${JSON.stringify(v)})`);
}

/** One generic event: `{kind, source?|service?, level?, message?, attributes?|metadata?, timestamp?}`. */
function event(p: Problems, b: unknown, path: string, w: TimeWindow, forced?: { kind: string }): NewEvent | undefined {
  if (!isObject(b))
    return p.add(path || 'body', 'must be an object {kind, source?, level?, message?, attributes?, timestamp?}');
  const f = (k: string) => (path ? `${path}.${k}` : k);
  let kind: string | undefined = forced?.kind;
  if (!kind) {
    kind = text(p, b.kind, f('kind'), { max: 64, required: true });
    if (kind !== undefined && !KIND.test(kind))
      kind = p.add(
        f('kind'),
        'must be lower case: a letter, then letters, digits, _ . - (log, policy, pipeline_status, …)',
      );
  }
  const sourceKey = b.source !== undefined ? 'source' : 'service';
  const source = name(p, b[sourceKey], f(sourceKey), 200, false) ?? null;
  const lvl = level(p, b.level, f('level'));
  const message = text(p, b.message, f('message'), { max: MAX_MESSAGE }) ?? '';
  const attrKey = b.attributes !== undefined ? 'attributes' : b.metadata !== undefined ? 'metadata' : 'details';
  const attributes = jsonObject(p, b[attrKey], f(attrKey));
  const time = timestamp(
    p,
    b.timestamp ?? b.time,
    f(b.timestamp !== undefined ? 'timestamp' : b.time !== undefined ? 'time' : 'timestamp'),
    w,
  );
  if (kind === undefined || lvl === undefined || attributes === undefined || time === undefined) return undefined;
  return { time, kind, source, level: lvl, message, attributes };
}

/** A policy event as the collector reference shows it: `{timestamp, policy_id, event_type, target, result, details}`. */
function policyEvent(p: Problems, b: unknown, path: string, w: TimeWindow): NewEvent | undefined {
  if (!isObject(b))
    return p.add(path || 'body', 'must be an object {policy_id, event_type, target?, result?, details?, timestamp?}');
  const f = (k: string) => (path ? `${path}.${k}` : k);
  const policyId = name(p, b.policy_id, f('policy_id'));
  const eventType = name(p, b.event_type, f('event_type'), 100);
  const target = name(p, b.target, f('target'), 500, false);
  const result = name(p, b.result, f('result'), 100, false);
  const details = jsonObject(p, b.details, f('details'));
  const source = name(p, b.source, f('source'), 200, false);
  const time = timestamp(p, b.timestamp, f('timestamp'), w);
  const lvl = b.level !== undefined ? level(p, b.level, f('level')) : policyLevel(result);
  if (!policyId || !eventType || details === undefined || time === undefined || !lvl) return undefined;
  const attributes: Json = {
    policy_id: policyId,
    event_type: eventType,
    target: target ?? null,
    result: result ?? null,
    details,
  };
  const message = `${eventType} ${policyId}${target ? ` on ${target}` : ''}${result ? `: ${result}` : ''}`;
  return { time, kind: KINDS.policy, source: source ?? null, level: lvl, message, attributes };
}

/** A log line as the monitoring reference shows it: `{timestamp, level, service, message, metadata}`. */
function logEvent(p: Problems, b: unknown, path: string, w: TimeWindow): NewEvent | undefined {
  const e = event(p, b, path, w, { kind: KINDS.log });
  if (e && !e.message) return p.add(path ? `${path}.message` : 'message', 'is required for a log entry');
  return e;
}

const policyLevel = (result: string | undefined): EventLevel => {
  const r = (result ?? '').toLowerCase();
  if (/error|fail/.test(r)) return 'error';
  if (/warn|violat|den|block|reject/.test(r)) return 'warn';
  return 'info';
};

type One = (p: Problems, b: unknown, path: string, w: TimeWindow) => NewEvent | undefined;

/** A single object or `{<listKey>: [...]}` of at most MAX_EVENTS_PER_REQUEST; all or nothing. */
function decodeMany(body: unknown, listKey: string, w: TimeWindow, one: One): NewEvent[] {
  if (!isObject(body)) throw invalidRequest(`Request body must be a JSON object, or {${listKey}: [...]}`);
  const p = new Problems();
  const out: NewEvent[] = [];
  if (listKey in body) {
    const list = body[listKey];
    if (!Array.isArray(list) || list.length === 0)
      throw fieldErrors([{ field: listKey, message: 'must be a non-empty array' }]);
    if (list.length > MAX_EVENTS_PER_REQUEST)
      throw payloadTooLarge(`At most ${MAX_EVENTS_PER_REQUEST} entries per request (got ${list.length})`, {
        field: listKey,
      });
    list.forEach((b, i) => {
      const e = one(p, b, `${listKey}[${i}]`, w);
      if (e) out.push(e);
    });
  } else {
    const e = one(p, body, '', w);
    if (e) out.push(e);
  }
  p.throwIfAny();
  return out;
}

export const decodeEvents = (body: unknown, w: TimeWindow) => decodeMany(body, 'events', w, event);
export const decodePolicyEvents = (body: unknown, w: TimeWindow) => decodeMany(body, 'events', w, policyEvent);
export const decodeLogs = (body: unknown, w: TimeWindow) => decodeMany(body, 'logs', w, logEvent);

/** What GET /events (and the policy and log views) may filter on. Times are half-open [since, until). */
export interface EventFilter {
  kinds?: string[];
  sources?: string[];
  levels?: EventLevel[];
  since?: number;
  until?: number;
  limit: number;
  /** Continue after this (time, id), newest first. */
  after?: { time: number; id: number };
}

export const encodeCursor = (time: number, id: number) => Buffer.from(`${time}.${id}`).toString('base64url');

function decodeCursor(v: unknown): { time: number; id: number } {
  const m = typeof v === 'string' ? /^(-?\d+)\.(\d+)$/.exec(Buffer.from(v, 'base64url').toString()) : null;
  if (!m) throw invalidQuery('cursor', 'cursor must be a next_cursor value from an earlier reply');
  return { time: Number(m[1]), id: Number(m[2]) };
}

function time(v: unknown, param: string, now: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const t = typeof v === 'string' ? parseQueryTime(v, now) : NaN;
  if (!Number.isFinite(t)) throw queryTimeError(param, v, typeof v === 'string' ? v : undefined);
  return t;
}

export interface EventQueryNames {
  kind?: string;
  source: string;
  level: string;
  since: string;
  until: string;
}

/** Query string → EventFilter. The views rename parameters (logs: `service`, `start_time`, `end_time`). */
export function parseEventFilter(
  q: Record<string, unknown>,
  now: number,
  names: EventQueryNames,
  defaultLimit = 100,
): EventFilter {
  const levels = listParam(q[names.level], names.level, 10)?.map((l) => {
    const n = normaliseLevel(l);
    if (!n)
      throw invalidQuery(
        names.level,
        `${names.level} must be one of ${EVENT_LEVELS.join(', ')} (got ${JSON.stringify(l)})`,
      );
    return n;
  });
  const since = time(q[names.since], names.since, now);
  const until = time(q[names.until], names.until, now);
  if (since !== undefined && until !== undefined && since > until) {
    throw invalidQuery(names.since, 'Invalid time range', {
      issue: `${names.since} must be before ${names.until}`,
      [names.since]: toIso(since),
      [names.until]: toIso(until),
    });
  }
  return {
    kinds: names.kind ? listParam(q[names.kind], names.kind) : undefined,
    sources: listParam(q[names.source], names.source),
    levels: levels ? [...new Set(levels)] : undefined,
    since,
    until,
    limit: intParam(q.limit, 'limit', defaultLimit, 1, 1_000),
    after: q.cursor !== undefined && q.cursor !== '' ? decodeCursor(q.cursor) : undefined,
  };
}
