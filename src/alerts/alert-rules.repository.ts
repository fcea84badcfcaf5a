import { Injectable } from '@nestjs/common';
import { Database, Queryable } from '../database/database.js';
import type { TagFilter } from '../query/query-spec.js';
import type { Condition, Direction, RuleSpec, RuleType, Severity } from './rule-spec.js';

export interface RuleRow {
  id: number;
  name: string;
  type: RuleType;
  description: string | null;
  metric: string;
  source: string | null;
  /** Stored as {key: [values]}. */
  tags: Record<string, string[]>;
  condition: Condition | null;
  threshold: number | null;
  algorithm: string | null;
  sensitivity: number | null;
  window_seconds: number | null;
  direction: Direction | null;
  duration_seconds: number;
  recovery_seconds: number;
  severity: Severity;
  notify: { webhook: string | null; email: string[] };
  webhook_secret: string | null;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
  last_evaluation: Record<string, unknown> | null;
  active_alerts?: number;
}

const COLUMNS = `id, name, type, description, metric, source, tags, condition, threshold, algorithm, sensitivity, window_seconds, direction,
  duration_seconds, recovery_seconds, severity, notify, webhook_secret, enabled, created_at, updated_at, last_evaluation`;

export const tagsToJson = (tags: readonly TagFilter[]) =>
  JSON.stringify(Object.fromEntries(tags.map((t) => [t.key, t.values])));
export const tagsFromJson = (tags: Record<string, string[]>): TagFilter[] =>
  Object.entries(tags).map(([key, values]) => ({ key, values }));

function values(s: RuleSpec, secret: string | null): unknown[] {
  return [
    s.name,
    s.type,
    s.description,
    s.metric,
    s.source,
    tagsToJson(s.tags),
    s.condition,
    s.threshold,
    s.algorithm,
    s.sensitivity,
    s.windowSeconds,
    s.direction,
    s.durationSeconds,
    s.recoverySeconds,
    s.severity,
    JSON.stringify(s.notify),
    secret,
    s.enabled,
  ];
}

/** All SQL of the alert_rules table. */
@Injectable()
export class AlertRulesRepository {
  constructor(private readonly database: Database) {}

  /** Inserts; undefined when the name is taken. */
  async insert(s: RuleSpec, secret: string | null): Promise<RuleRow | undefined> {
    const r = await this.database.readPool.query<RuleRow>(
      `INSERT INTO alert_rules (name, type, description, metric, source, tags, condition, threshold, algorithm, sensitivity, window_seconds,
         direction, duration_seconds, recovery_seconds, severity, notify, webhook_secret, enabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
       ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
      values(s, secret),
    );
    return r.rows[0];
  }

  /** Replaces a rule; undefined when it does not exist. Throws 23505 when the new name is taken. */
  async update(id: number, s: RuleSpec, secret: string | null): Promise<RuleRow | undefined> {
    const r = await this.database.readPool.query<RuleRow>(
      `UPDATE alert_rules SET name = $1, type = $2, description = $3, metric = $4, source = $5, tags = $6, condition = $7, threshold = $8,
         algorithm = $9, sensitivity = $10, window_seconds = $11, direction = $12, duration_seconds = $13, recovery_seconds = $14,
         severity = $15, notify = $16, webhook_secret = $17, enabled = $18, updated_at = now()
       WHERE id = $19 RETURNING ${COLUMNS}`,
      [...values(s, secret), id],
    );
    return r.rows[0];
  }

  async get(id: number, client: Queryable = this.database.readPool): Promise<RuleRow | undefined> {
    return (await client.query<RuleRow>(`SELECT ${COLUMNS} FROM alert_rules WHERE id = $1`, [id])).rows[0];
  }

  async byName(name: string): Promise<RuleRow | undefined> {
    return (await this.database.readPool.query<RuleRow>(`SELECT ${COLUMNS} FROM alert_rules WHERE name = $1`, [name]))
      .rows[0];
  }

  async list(onlyEnabled = false): Promise<RuleRow[]> {
    const r = await this.database.readPool.query<RuleRow>(
      `SELECT ${COLUMNS}, (SELECT count(*) FROM alerts a WHERE a.rule_id = r.id AND a.state <> 'resolved') AS active_alerts
       FROM alert_rules r ${onlyEnabled ? 'WHERE enabled' : ''} ORDER BY id LIMIT 10000`,
    );
    return r.rows;
  }

  /**
   * Whether any series of `metric` is stored; when none is, up to 5 stored metric names holding
   * some of `words` (lower case), those holding the most first (of the first 200 holding one, by
   * name), for a rule's warning.
   */
  async metricKnown(metric: string, words: string[]): Promise<{ known: boolean; similar: string[] }> {
    const r = await this.database.readPool.query<{ known: boolean; similar: string[] }>(
      `SELECT EXISTS (SELECT 1 FROM series WHERE metric = $1) AS known,
              ARRAY(SELECT DISTINCT metric FROM series
                    WHERE NOT EXISTS (SELECT 1 FROM series WHERE metric = $1)
                      AND EXISTS (SELECT 1 FROM unnest($2::text[]) w WHERE strpos(lower(metric), w) > 0)
                    ORDER BY metric LIMIT 200) AS similar`,
      [metric, words],
    );
    const { known, similar } = r.rows[0];
    const hits = (name: string) => words.filter((w) => name.toLowerCase().includes(w)).length;
    const ranked = similar.map((name) => ({ name, hits: hits(name) })).sort((a, b) => b.hits - a.hits);
    return { known, similar: ranked.slice(0, 5).map((x) => x.name) };
  }

  async count(): Promise<number> {
    return (await this.database.readPool.query<{ n: number }>('SELECT count(*) AS n FROM alert_rules')).rows[0].n;
  }

  async delete(id: number): Promise<boolean> {
    return ((await this.database.readPool.query('DELETE FROM alert_rules WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async recordEvaluation(id: number, evaluation: Record<string, unknown>): Promise<void> {
    await this.database.readPool.query('UPDATE alert_rules SET last_evaluation = $2 WHERE id = $1', [
      id,
      JSON.stringify(evaluation),
    ]);
  }
}
