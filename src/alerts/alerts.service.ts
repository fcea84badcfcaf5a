import { Injectable } from '@nestjs/common';
import type pg from 'pg';
import { ApiError, invalidRequest, notFound } from '../common/errors.js';
import { intParam, isObject, Json, jsonObject, listParam, name, Problems, text } from '../common/input.js';
import { toIso } from '../common/time.js';
import { Database } from '../database/database.js';
import { EventLevel, KINDS, NewEvent } from '../events/event-input.js';
import { EventsService } from '../events/events.service.js';
import { Notification, WebhookService } from '../webhooks/webhook.service.js';
import type { RuleRow } from './alert-rules.repository.js';
import { AlertFilter, AlertRow, AlertsRepository, AlertState, NewAlert } from './alerts.repository.js';
import { normaliseSeverity, SEVERITIES, Severity } from './rule-spec.js';

const STATES: AlertState[] = ['firing', 'acknowledged', 'resolved'];
const EVENT_LEVEL: Record<Severity, EventLevel> = { info: 'info', warning: 'warn', critical: 'critical' };

/** The reply shape of an alert (monitoring-api.md "Alerts", plus its lifecycle). */
export function alertView(a: AlertRow) {
  return {
    id: a.id,
    alert_id: `alt_${a.id}`,
    state: a.state,
    severity: a.severity,
    type: a.type,
    title: a.title,
    message: a.message,
    origin: a.origin,
    rule_id: a.rule_id,
    metric: a.metric,
    source: a.source,
    tags: a.tags,
    service: a.service,
    condition: a.condition,
    current_value: a.current_value,
    threshold: a.threshold,
    metadata: a.metadata,
    occurrences: a.occurrences,
    triggered_at: a.triggered_at.toISOString(),
    last_seen_at: a.last_seen_at.toISOString(),
    acknowledged_at: a.acknowledged_at?.toISOString() ?? null,
    acknowledged_by: a.acknowledged_by,
    notes: a.notes,
    resolved_at: a.resolved_at?.toISOString() ?? null,
    resolution: a.resolution,
  };
}

/** `42` or `alt_42` → 42. */
export function parseAlertId(v: string): number {
  const m = /^(?:alt_)?(\d{1,15})$/.exec(v);
  if (!m) throw notFound(`No alert ${v}`);
  return Number(m[1]);
}

/**
 * Alerts and their lifecycle: firing → acknowledged → resolved (or firing → resolved). Every
 * transition is an event (kind alert), in the same transaction; firing and resolving also queue
 * the rule's webhook in that transaction (signed, retried, logged by the webhooks module, subject
 * `alert:<id>`), so each committed transition is notified once.
 */
@Injectable()
export class AlertsService {
  private clock: () => number = Date.now;

  constructor(
    private readonly repo: AlertsRepository,
    private readonly events: EventsService,
    private readonly webhooks: WebhookService,
    private readonly database: Database,
  ) {}

  /** Test seam: the time of transitions and of rule evaluation. */
  useClock(clock: () => number): void {
    this.clock = clock;
  }

  now(): number {
    return this.clock();
  }

  /** A rule's condition held long enough: a new firing alert (none if one is active already). */
  async fire(rule: RuleRow, a: NewAlert): Promise<AlertRow | undefined> {
    return this.transition(a.time, async (c) => {
      const row = await this.repo.insertFiring(c, a);
      return (
        row && { row, event: transitionEvent(row, null, a.time), notification: notification(rule, row, 'alert.firing') }
      );
    });
  }

  async resolve(
    alertId: number,
    resolution: string,
    rule: RuleRow | undefined,
    time = this.clock(),
    value?: number | null,
  ): Promise<AlertRow | undefined> {
    return this.transition(time, async (c) => {
      const previous = (await this.repo.get(alertId, c))?.state;
      const row = await this.repo.resolve(c, alertId, resolution, time, value);
      return (
        row && {
          row,
          event: transitionEvent(row, previous ?? null, time),
          notification: rule && notification(rule, row, 'alert.resolved'),
        }
      );
    });
  }

  touch(alertId: number, value: number | null, time: number): Promise<void> {
    return this.repo.touch(alertId, value, time);
  }

  activeOfRule(ruleId: number): Promise<AlertRow[]> {
    return this.repo.activeOfRule(ruleId);
  }

  /** POST /api/v1/alerts (system-monitor-integration.md "Alert Creation"): {title, message, severity 1|2|3, service}. */
  async raise(body: unknown): Promise<{ created: boolean; alert: ReturnType<typeof alertView> }> {
    if (!isObject(body)) throw invalidRequest('Request body must be a JSON object {title, message, severity, service}');
    const p = new Problems();
    const title = name(p, body.title, 'title', 500);
    const message = text(p, body.message, 'message', { max: 8_192 }) ?? '';
    const severity =
      body.severity === undefined
        ? 'warning'
        : (normaliseSeverity(body.severity) ??
          p.add('severity', 'must be 1 (info), 2 (warning), 3 (critical) or their names'));
    const service =
      name(p, body.service ?? body.source, body.service !== undefined ? 'service' : 'source', 200, false) ?? null;
    const metadata = jsonObject(p, body.metadata, 'metadata');
    p.throwIfAny();
    const time = this.clock();
    const a: NewAlert = {
      fingerprint: `client:${service ?? ''}:${title}`,
      origin: 'client',
      ruleId: null,
      seriesId: null,
      severity: severity!,
      type:
        title!
          .toLowerCase()
          .replace(/[^a-z0-9]+/g, '_')
          .replace(/^_|_$/g, '')
          .slice(0, 64) || 'alert',
      title: title!,
      message,
      metric: null,
      source: service,
      tags: null,
      service,
      condition: null,
      currentValue: null,
      threshold: null,
      metadata: metadata as Json,
      time,
    };
    let created = true;
    const row = await this.transition(time, async (c) => {
      const inserted = await this.repo.insertFiring(c, a);
      if (inserted) return { row: inserted, event: transitionEvent(inserted, null, time) };
      // Already active: the same alert again (as Alertmanager groups repeats).
      created = false;
      const repeated = await this.repo.repeat(c, a.fingerprint, a);
      return repeated && { row: repeated };
    });
    if (!row) throw new ApiError(409, 'CONFLICT', 'The alert changed while it was being raised; retry');
    return { created, alert: alertView(row) };
  }

  /** POST /alerts/{id}/acknowledge {acknowledged_by, notes}. */
  async acknowledge(id: string, body: unknown) {
    const alertId = parseAlertId(id);
    const b = isObject(body) ? body : body === undefined || body === null ? {} : undefined;
    if (!b) throw invalidRequest('Request body must be a JSON object {acknowledged_by, notes?}');
    const p = new Problems();
    const by = name(p, b.acknowledged_by, 'acknowledged_by');
    const notes = text(p, b.notes, 'notes', { max: 4_096 }) ?? null;
    p.throwIfAny();
    const time = this.clock();
    const row = await this.transition(time, async (c) => {
      const acked = await this.repo.acknowledge(c, alertId, by!, notes, time);
      return acked && { row: acked, event: transitionEvent(acked, 'firing', time) };
    });
    if (!row) {
      const current = await this.repo.get(alertId);
      if (!current) throw notFound(`No alert ${id}`);
      throw new ApiError(
        409,
        'CONFLICT',
        `Alert ${id} is ${current.state}${current.acknowledged_by ? ` (acknowledged by ${current.acknowledged_by})` : ''}; only a firing alert can be acknowledged`,
        {
          state: current.state,
        },
      );
    }
    return { status: 'success', alert: alertView(row) };
  }

  /** POST /alerts/{id}/resolve {resolved_by?, notes?}: by hand (a rule whose condition still holds fires again). */
  async resolveByHand(id: string, body: unknown, rule: (ruleId: number) => Promise<RuleRow | undefined>) {
    const alertId = parseAlertId(id);
    const b = isObject(body) ? body : {};
    const p = new Problems();
    const by = name(p, b.resolved_by, 'resolved_by', 200, false);
    const notes = text(p, b.notes, 'notes', { max: 4_096 });
    p.throwIfAny();
    const current = await this.repo.get(alertId);
    if (!current) throw notFound(`No alert ${id}`);
    if (current.state === 'resolved')
      throw new ApiError(409, 'CONFLICT', `Alert ${id} is already resolved`, { state: current.state });
    const resolution = `resolved by hand${by ? ` by ${by}` : ''}${notes ? `: ${notes}` : ''}`;
    const row = await this.resolve(
      alertId,
      resolution,
      current.rule_id !== null ? await rule(current.rule_id) : undefined,
    );
    if (!row) throw new ApiError(409, 'CONFLICT', `Alert ${id} was resolved meanwhile`);
    return { status: 'success', alert: alertView(row) };
  }

  async get(id: string) {
    const row = await this.repo.get(parseAlertId(id));
    if (!row) throw notFound(`No alert ${id}`);
    return alertView(row);
  }

  /** GET /api/v1/alerts: active alerts by default (`state=firing,acknowledged,resolved` or `all`), with the reference's counts. */
  async list(q: Record<string, unknown>, defaultStates: AlertState[] = ['firing', 'acknowledged']) {
    const rawStates = listParam(q.state, 'state');
    const states = !rawStates
      ? defaultStates
      : rawStates.includes('all')
        ? STATES
        : rawStates.includes('active')
          ? [...new Set([...rawStates.filter((s) => s !== 'active'), 'firing', 'acknowledged'])]
          : rawStates;
    for (const s of states)
      if (!STATES.includes(s as AlertState))
        throw invalidQueryField('state', `state must be any of ${STATES.join(', ')}, active or all`);
    const severities = listParam(q.severity, 'severity')?.map(
      (s) => normaliseSeverity(s) ?? invalidQueryField('severity', `severity must be any of ${SEVERITIES.join(', ')}`),
    );
    const ruleId = q.rule_id === undefined ? undefined : intParam(q.rule_id, 'rule_id', 0, 1, 2 ** 31 - 1);
    const filter: AlertFilter = {
      states: states as AlertState[],
      severities: severities as Severity[] | undefined,
      ruleId,
      source: typeof q.source === 'string' && q.source ? q.source : undefined,
      limit: intParam(q.limit, 'limit', 100, 1, 1_000),
      beforeId:
        q.cursor === undefined || q.cursor === ''
          ? undefined
          : intParam(q.cursor, 'cursor', 0, 1, Number.MAX_SAFE_INTEGER),
    };
    const rows = await this.repo.list(filter);
    const more = rows.length > filter.limit;
    if (more) rows.length = filter.limit;
    const counts = {
      active_count: 0,
      firing_count: 0,
      acknowledged_count: 0,
      critical_count: 0,
      warning_count: 0,
      info_count: 0,
    };
    for (const c of await this.repo.activeCounts()) {
      counts.active_count += c.n;
      counts[`${c.state as 'firing' | 'acknowledged'}_count`] += c.n;
      counts[`${c.severity}_count`] += c.n;
    }
    return {
      alerts: rows.map(alertView),
      total: rows.length,
      ...counts,
      next_cursor: more ? String(rows[rows.length - 1].id) : null,
    };
  }

  /** Webhook deliveries of one alert, newest first (secrets never shown). */
  async notifications(id: string) {
    const alertId = parseAlertId(id);
    if (!(await this.repo.get(alertId))) throw notFound(`No alert ${id}`);
    const deliveries = await this.webhooks.list({ subject: `alert:${alertId}`, limit: '1000' });
    return { alert_id: `alt_${alertId}`, deliveries, total: deliveries.length };
  }

  /**
   * Runs a state change, its event and its webhook delivery in one transaction (the event
   * partition is made first): a notification is queued exactly when its transition commits.
   * A failure anywhere rolls all three back; the next evaluation (or the caller) tries again.
   */
  private async transition(
    time: number,
    fn: (c: pg.PoolClient) => Promise<Transition | undefined>,
  ): Promise<AlertRow | undefined> {
    await this.events.prepare([time]);
    const out = await this.database.generalTransaction(async (c) => {
      const t = await fn(c);
      if (t?.event) await this.events.record([t.event], c);
      if (t?.notification) await this.webhooks.enqueueIn(c, t.notification);
      return t;
    });
    if (out?.notification) this.webhooks.kick();
    return out?.row;
  }
}

interface Transition {
  row: AlertRow;
  event?: NewEvent;
  notification?: Notification;
}

/** The webhook of a firing or resolved alert, when its rule has one (subject `alert:<id>`). */
export function notification(
  rule: RuleRow,
  alert: AlertRow,
  event: 'alert.firing' | 'alert.resolved',
): Notification | undefined {
  const url = rule.notify?.webhook;
  if (!url) return undefined;
  return {
    subject: `alert:${alert.id}`,
    event,
    url,
    secret: rule.webhook_secret,
    payload: {
      event,
      alert: alertView(alert),
      rule: { id: rule.id, name: rule.name, type: rule.type },
      sent_at: toIso(Date.now()),
    },
  };
}

function invalidQueryField(field: string, message: string): never {
  throw new ApiError(400, 'INVALID_QUERY', message, { parameter: field, field });
}

/** The event recording a transition into `row.state` from `previous` (null: a new alert). */
export function transitionEvent(row: AlertRow, previous: AlertState | null, time: number): NewEvent {
  const what =
    row.state === 'firing'
      ? 'firing'
      : row.state === 'acknowledged'
        ? `acknowledged by ${row.acknowledged_by}`
        : `resolved (${row.resolution})`;
  return {
    time,
    kind: KINDS.alert,
    source: row.source ?? row.service,
    level: row.state === 'firing' ? EVENT_LEVEL[row.severity] : 'info',
    message: `alert alt_${row.id} ${what}: ${row.title}${row.state === 'firing' && row.message ? ` — ${row.message}` : ''}`,
    attributes: {
      alert_id: row.id,
      rule_id: row.rule_id,
      state: row.state,
      previous_state: previous,
      severity: row.severity,
      type: row.type,
      metric: row.metric,
      tags: row.tags,
      current_value: row.current_value,
      threshold: row.threshold,
      ...(row.state === 'acknowledged' ? { acknowledged_by: row.acknowledged_by, notes: row.notes } : {}),
      ...(row.state === 'resolved' ? { resolution: row.resolution } : {}),
    },
  };
}
