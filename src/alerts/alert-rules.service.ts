import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { ApiError, notFound } from '../common/errors.js';
import { WebhookService } from '../webhooks/webhook.service.js';
import { ANOMALY_DETECTOR, type AnomalyDetector } from './anomaly-detector.js';
import { RuleRow, AlertRulesRepository } from './alert-rules.repository.js';
import { AlertsService } from './alerts.service.js';
import { parseRuleSpec, RuleSpec } from './rule-spec.js';

/** Rules per instance: the evaluation job reads each one every ALERTS_EVALUATION_SECONDS. */
export const MAX_RULES = 1_000;

/** The reply shape of a rule: never its webhook secret. */
export function ruleView(r: RuleRow) {
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    description: r.description,
    metric: r.metric,
    source: r.source,
    tags: Object.fromEntries(Object.entries(r.tags).map(([k, v]) => [k, v.length === 1 ? v[0] : v])),
    ...(r.type === 'threshold'
      ? { condition: r.condition, threshold: r.threshold }
      : {
          algorithm: r.algorithm,
          sensitivity: r.sensitivity,
          window_seconds: r.window_seconds,
          direction: r.direction,
        }),
    duration_seconds: r.duration_seconds,
    recovery_seconds: r.recovery_seconds,
    severity: r.severity,
    notify: { webhook: r.notify.webhook, email: r.notify.email },
    webhook_signed: Boolean(r.webhook_secret),
    enabled: r.enabled,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    active_alerts: r.active_alerts ?? undefined,
    status: r.last_evaluation,
  };
}

const newSecret = () => `whsec_${randomBytes(24).toString('base64url')}`;

/**
 * Alert rules: create, replace, delete. A webhook URL is checked against internal addresses when
 * saved (400 naming notify.webhook). Every webhook is signed: with the secret the user gives
 * (`notify.secret`), or else with one generated here and shown once, in the reply that created it
 * (`webhook_secret`); `rotate_webhook_secret: true` on PUT makes a new one, shown once too.
 */
@Injectable()
export class AlertRulesService {
  constructor(
    private readonly repo: AlertRulesRepository,
    private readonly alerts: AlertsService,
    private readonly webhooks: WebhookService,
    @Inject(ANOMALY_DETECTOR) private readonly detector: AnomalyDetector,
  ) {}

  async create(body: unknown) {
    return this.insert(await this.validate(body));
  }

  /** POST /api/v1/monitoring/alerts/configure: creates the rule, or replaces the one with the same name. */
  async configure(
    body: unknown,
  ): Promise<{ created: boolean; reply: Awaited<ReturnType<AlertRulesService['reply']>> }> {
    const spec = await this.validate(body);
    const existing = await this.repo.byName(spec.name);
    if (!existing) return { created: true, reply: await this.insert(spec) };
    return { created: false, reply: await this.replace(existing, spec) };
  }

  private async insert(spec: RuleSpec) {
    if ((await this.repo.count()) >= MAX_RULES)
      throw new ApiError(422, 'UNPROCESSABLE_ENTITY', `At most ${MAX_RULES} alert rules; delete unused ones first`, {
        max: MAX_RULES,
      });
    const secret = spec.notify.webhook ? (spec.secret ?? newSecret()) : null;
    const row = await this.repo.insert(spec, secret);
    if (!row)
      throw new ApiError(
        409,
        'CONFLICT',
        `An alert rule named ${spec.name} exists; PUT /api/v1/alert-rules/{id} to change it`,
        { field: 'name' },
      );
    return this.reply(row, secret !== null && spec.secret === null ? secret : undefined);
  }

  async update(id: string, body: unknown) {
    const existing = await this.repo.get(ruleId(id));
    if (!existing) throw notFound(`No alert rule ${id}`);
    return this.replace(existing, await this.validate(body));
  }

  async get(id: string) {
    const row = await this.repo.get(ruleId(id));
    if (!row) throw notFound(`No alert rule ${id}`);
    return ruleView({ ...row, active_alerts: (await this.alerts.activeOfRule(row.id)).length });
  }

  async list() {
    const rows = await this.repo.list();
    return { rules: rows.map(ruleView), total: rows.length };
  }

  /** Deletes a rule; its active alerts resolve (and send their resolved webhook). */
  async remove(id: string): Promise<void> {
    const row = await this.repo.get(ruleId(id));
    if (!row) throw notFound(`No alert rule ${id}`);
    for (const a of await this.alerts.activeOfRule(row.id)) await this.alerts.resolve(a.id, 'rule deleted', row);
    await this.repo.delete(row.id);
  }

  rule(id: number): Promise<RuleRow | undefined> {
    return this.repo.get(id);
  }

  private async replace(existing: RuleRow, spec: RuleSpec) {
    let secret: string | null = null;
    let shown: string | undefined;
    if (spec.notify.webhook) {
      if (spec.secret) secret = spec.secret;
      else if (spec.rotateSecret || !existing.webhook_secret) secret = shown = newSecret();
      else secret = existing.webhook_secret;
    }
    let row: RuleRow | undefined;
    try {
      row = await this.repo.update(existing.id, spec, secret);
    } catch (err) {
      if ((err as { code?: string }).code === '23505')
        throw new ApiError(409, 'CONFLICT', `An alert rule named ${spec.name} exists`, { field: 'name' });
      throw err;
    }
    if (!row) throw notFound(`No alert rule ${existing.id}`);
    if (!row.enabled)
      for (const a of await this.alerts.activeOfRule(row.id)) await this.alerts.resolve(a.id, 'rule disabled', row);
    return this.reply(row, shown);
  }

  private async validate(body: unknown): Promise<RuleSpec> {
    const spec = parseRuleSpec(body, this.detector.algorithms);
    if (spec.notify.webhook)
      spec.notify.webhook = await this.webhooks.assertSafeUrl(spec.notify.webhook, 'notify.webhook');
    return spec;
  }

  private async reply(row: RuleRow, secretShownOnce: string | undefined) {
    const view = ruleView(row);
    const warnings: string[] = [];
    if (row.notify.email.length)
      warnings.push('notify.email is stored but not sent: Timescope notifies by webhook only (bridge to email there)');
    // A rule on a metric nothing has written (a name from another system's documents, say
    // memory.usage_percent for the collector's host.memory_usage) would wait silently forever.
    const words = [...new Set(row.metric.toLowerCase().split(/[^a-z0-9]+/))].filter((w) => w.length >= 3);
    // Best effort: the rule is saved already (and a generated secret is shown only in this reply).
    const { known, similar } = await this.repo
      .metricKnown(row.metric, words)
      .catch(() => ({ known: true, similar: [] as string[] }));
    if (!known)
      warnings.push(
        `no series of metric ${row.metric} is stored yet: the rule is evaluated once points of it arrive${similar.length ? `; stored metrics with a similar name: ${similar.join(', ')}` : ''} (GET /api/v1/metrics/names lists them all)`,
      );
    return {
      ...view,
      ...(secretShownOnce ? { webhook_secret: secretShownOnce } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
  }
}

function ruleId(v: string): number {
  if (!/^\d{1,9}$/.test(v)) throw notFound(`No alert rule ${v}`);
  return Number(v);
}
