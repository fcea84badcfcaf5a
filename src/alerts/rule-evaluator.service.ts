import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AppConfig } from '../config/config.js';
import { JobsService } from '../jobs/jobs.service.js';
import { type AnomalyDetector, ANOMALY_DETECTOR } from './anomaly-detector.js';
import { AlertRulesRepository, RuleRow, tagsFromJson } from './alert-rules.repository.js';
import { AlertsRepository, SeriesMeta } from './alerts.repository.js';
import { AlertsService } from './alerts.service.js';
import { MAX_EVALUATION_POINTS } from './series-anomaly-detector.js';
import { decide, lookback, STALE_MS, summarize, Timing, WindowStats } from './evaluation.js';
import { CONDITIONS, humanSeconds, seriesLabel } from './rule-spec.js';

/** Series one rule may watch: past it the rule reports an error rather than silently watching a part. */
const MAX_SERIES_PER_RULE = 1_000;
const MAX_SERIES_PER_ANOMALY_RULE = 100;

export interface EvaluationReport {
  rules: number;
  fired: number;
  resolved: number;
  pending: number;
  errors: number;
  [k: string]: number;
}

/**
 * The alert-evaluation job: every ALERTS_EVALUATION_SECONDS, each enabled rule is evaluated on
 * each series it matches, from stored points (evaluation.ts says when an alert fires and
 * resolves). Runs under the job's advisory lock, so one instance evaluates at a time; an active
 * alert per rule and series is also unique in the database.
 */
@Injectable()
export class RuleEvaluator implements OnModuleInit {
  private readonly logger = new Logger('alert-evaluation');

  constructor(
    private readonly rules: AlertRulesRepository,
    private readonly repo: AlertsRepository,
    private readonly alerts: AlertsService,
    private readonly jobs: JobsService,
    private readonly config: AppConfig,
    @Inject(ANOMALY_DETECTOR) private readonly detector: AnomalyDetector,
  ) {}

  onModuleInit(): void {
    this.jobs.register({
      name: 'alert-evaluation',
      description:
        'Evaluates the alert rules on stored data: fires alerts whose condition held for duration_seconds, resolves those that stopped holding for recovery_seconds',
      every: () => this.config.alerts.evaluationMs,
      run: () => this.evaluateAll(),
    });
  }

  async evaluateAll(): Promise<EvaluationReport> {
    const report: EvaluationReport = { rules: 0, fired: 0, resolved: 0, pending: 0, errors: 0 };
    for (const rule of await this.rules.list(true)) {
      report.rules++;
      const t0 = performance.now();
      const now = this.alerts.now();
      try {
        const r = await this.evaluate(rule, now);
        report.fired += r.fired;
        report.resolved += r.resolved;
        report.pending += r.pending;
        await this.rules.recordEvaluation(rule.id, {
          evaluated_at: new Date(now).toISOString(),
          duration_ms: Math.round(performance.now() - t0),
          ...r,
          error: null,
        });
      } catch (err) {
        report.errors++;
        const error = (err as Error).message;
        this.logger.warn(`rule ${rule.id} (${rule.name}): ${error}`);
        await this.rules
          .recordEvaluation(rule.id, { evaluated_at: new Date(now).toISOString(), error })
          .catch(() => undefined);
      }
    }
    return report;
  }

  /** Evaluates one rule at `now`; returns what changed. */
  async evaluate(rule: RuleRow, now: number) {
    const timing: Timing = {
      durationMs: rule.duration_seconds * 1000,
      recoveryMs: rule.recovery_seconds * 1000,
      staleMs: STALE_MS,
    };
    const cap = rule.type === 'anomaly' ? MAX_SERIES_PER_ANOMALY_RULE : MAX_SERIES_PER_RULE;
    const series = await this.repo.seriesOf(rule.metric, rule.source, tagsFromJson(rule.tags), cap);
    if (series.length > cap) throw new Error(`matches more than ${cap} series; narrow it with source or tags`);
    const stats =
      rule.type === 'threshold'
        ? await this.thresholdStats(rule, series, now, timing)
        : await this.anomalyStats(rule, series, now, timing);
    const active = new Map((await this.alerts.activeOfRule(rule.id)).map((a) => [a.series_id, a]));
    const out = { series: series.length, firing: 0, pending: 0, fired: 0, resolved: 0 };
    const empty: WindowStats = {
      lastTime: null,
      lastValue: null,
      fireEdge: null,
      resolveEdge: null,
      lastTrue: null,
      lastFalse: null,
    };
    for (const s of series) {
      const w = stats.get(s.id) ?? empty;
      const alert = active.get(s.id);
      active.delete(s.id);
      const d = decide(w, now, timing, alert !== undefined);
      if (d.pending) out.pending++;
      if (d.action === 'fire') {
        const a = await this.alerts.fire(rule, {
          fingerprint: `rule:${rule.id}:series:${s.id}`,
          origin: 'rule',
          ruleId: rule.id,
          seriesId: s.id,
          severity: rule.severity,
          type: rule.name,
          title: rule.name,
          message: describe(rule, s, w.lastValue),
          metric: s.metric,
          source: s.source,
          tags: s.tags,
          service: null,
          condition: rule.condition,
          currentValue: w.lastValue,
          threshold: rule.threshold,
          metadata: {
            unit: s.unit,
            rule_type: rule.type,
            duration_seconds: rule.duration_seconds,
            ...(rule.type === 'anomaly' ? { algorithm: rule.algorithm, sensitivity: rule.sensitivity } : {}),
          },
          time: now,
        });
        if (a) out.fired++;
        out.firing++;
      } else if (d.action === 'resolve') {
        const reason =
          d.reason === 'no_data'
            ? `no data for ${STALE_MS / 60_000} minutes`
            : `condition cleared for ${humanSeconds(rule.recovery_seconds)}`;
        if (await this.alerts.resolve(alert!.id, reason, rule, now, w.lastValue)) out.resolved++;
      } else if (d.action === 'keep') {
        out.firing++;
        if (w.lastValue !== null && w.lastValue !== alert!.current_value)
          await this.alerts.touch(alert!.id, w.lastValue, now);
      }
    }
    // Active alerts of series the rule no longer matches (the rule changed, or the series is gone).
    for (const a of active.values())
      if (await this.alerts.resolve(a.id, 'the series no longer matches the rule', rule, now)) out.resolved++;
    return out;
  }

  private async thresholdStats(
    rule: RuleRow,
    series: SeriesMeta[],
    now: number,
    timing: Timing,
  ): Promise<Map<number, WindowStats>> {
    if (series.length === 0) return new Map();
    const lb = lookback(now, timing);
    return this.repo.thresholdStats(
      series.map((s) => s.id),
      rule.condition!,
      rule.threshold!,
      { ...lb, now, staleMs: timing.staleMs },
    );
  }

  /** A point "holds" when the detector finds it anomalous against the trailing window before now. */
  private async anomalyStats(
    rule: RuleRow,
    series: SeriesMeta[],
    now: number,
    timing: Timing,
  ): Promise<Map<number, WindowStats>> {
    const out = new Map<number, WindowStats>();
    const lb = lookback(now, timing);
    for (const s of series) {
      const anomalies = await this.detector.detect({
        metric: s.metric,
        seriesId: s.id,
        from: lb.from - rule.window_seconds! * 1000,
        to: now,
        windowMs: rule.window_seconds! * 1000,
        algorithm: rule.algorithm!,
        sensitivity: rule.sensitivity!,
        direction: rule.direction ?? 'both',
      });
      const flagged = new Set(anomalies.map((a) => a.timestamp));
      // Bounded like the detector's read: a long duration over a fast series cannot load millions of points.
      const points = await this.repo.points(s.id, lb.from, now, MAX_EVALUATION_POINTS);
      out.set(
        s.id,
        summarize(
          points.map((p) => ({ ...p, holds: flagged.has(p.time) })),
          now,
          timing,
        ),
      );
    }
    return out;
  }
}

function describe(rule: RuleRow, s: SeriesMeta, value: number | null): string {
  const label = seriesLabel(s.metric, s.source, s.tags);
  const current = value === null ? '' : ` (current ${value}${s.unit ? ` ${s.unit}` : ''})`;
  if (rule.type === 'threshold')
    return `${label} ${CONDITIONS[rule.condition!].op === '<>' ? '!=' : CONDITIONS[rule.condition!].op} ${rule.threshold} for ${humanSeconds(rule.duration_seconds)}${current}`;
  return `${label} anomalous (${rule.algorithm}, sensitivity ${rule.sensitivity}) for ${humanSeconds(rule.duration_seconds)}${current}`;
}
