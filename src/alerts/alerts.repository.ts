import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database, Queryable } from '../database/database.js';
import type { WindowStats } from './evaluation.js';
import { CONDITIONS, Condition, Severity } from './rule-spec.js';

export type AlertState = 'firing' | 'acknowledged' | 'resolved';
export type AlertOrigin = 'rule' | 'client';

export interface AlertRow {
  id: number;
  fingerprint: string;
  origin: AlertOrigin;
  rule_id: number | null;
  series_id: number | null;
  state: AlertState;
  severity: Severity;
  type: string;
  title: string;
  message: string;
  metric: string | null;
  source: string | null;
  tags: Record<string, string> | null;
  service: string | null;
  condition: Condition | null;
  current_value: number | null;
  threshold: number | null;
  metadata: Record<string, unknown>;
  occurrences: number;
  triggered_at: Date;
  last_seen_at: Date;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  notes: string | null;
  resolved_at: Date | null;
  resolution: string | null;
  updated_at: Date;
}

export interface NewAlert {
  fingerprint: string;
  origin: AlertOrigin;
  ruleId: number | null;
  seriesId: number | null;
  severity: Severity;
  type: string;
  title: string;
  message: string;
  metric: string | null;
  source: string | null;
  tags: Record<string, string> | null;
  service: string | null;
  condition: Condition | null;
  currentValue: number | null;
  threshold: number | null;
  metadata: Record<string, unknown>;
  time: number;
}

export interface SeriesMeta {
  id: number;
  metric: string;
  source: string;
  tags: Record<string, string>;
  unit: string | null;
}

export interface AlertFilter {
  states: AlertState[];
  severities?: Severity[];
  ruleId?: number;
  source?: string;
  limit: number;
  beforeId?: number;
}

const COLUMNS = `id, fingerprint, origin, rule_id, series_id, state, severity, type, title, message, metric, source, tags, service, condition,
  current_value, threshold, metadata, occurrences, triggered_at, last_seen_at, acknowledged_at, acknowledged_by, notes, resolved_at, resolution, updated_at`;

/** All SQL of alerts, and the reads of points that alert evaluation needs. */
@Injectable()
export class AlertsRepository {
  constructor(private readonly database: Database) {}

  /** Inserts a firing alert unless one with this fingerprint is active (then undefined). */
  async insertFiring(c: Queryable, a: NewAlert): Promise<AlertRow | undefined> {
    const r = await c.query<AlertRow>(
      `INSERT INTO alerts (fingerprint, origin, rule_id, series_id, state, severity, type, title, message, metric, source, tags, service,
         condition, current_value, threshold, metadata, triggered_at, last_seen_at, updated_at)
       VALUES ($1, $2, $3, $4, 'firing', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $17)
       ON CONFLICT (fingerprint) WHERE state <> 'resolved' DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        a.fingerprint,
        a.origin,
        a.ruleId,
        a.seriesId,
        a.severity,
        a.type,
        a.title,
        a.message,
        a.metric,
        a.source,
        a.tags === null ? null : JSON.stringify(a.tags),
        a.service,
        a.condition,
        a.currentValue,
        a.threshold,
        JSON.stringify(a.metadata),
        toIso(a.time),
      ],
    );
    return r.rows[0];
  }

  /** A client raised an alert that is already active: count it again and keep the newest text. */
  async repeat(c: Queryable, fingerprint: string, a: NewAlert): Promise<AlertRow | undefined> {
    const r = await c.query<AlertRow>(
      `UPDATE alerts SET occurrences = occurrences + 1, message = $2, severity = $3, metadata = $4, last_seen_at = $5, updated_at = $5
       WHERE fingerprint = $1 AND state <> 'resolved' RETURNING ${COLUMNS}`,
      [fingerprint, a.message, a.severity, JSON.stringify(a.metadata), toIso(a.time)],
    );
    return r.rows[0];
  }

  async touch(id: number, value: number | null, time: number): Promise<void> {
    await this.database.readPool.query(
      `UPDATE alerts SET current_value = $2, last_seen_at = $3 WHERE id = $1 AND state <> 'resolved'`,
      [id, value, toIso(time)],
    );
  }

  async resolve(
    c: Queryable,
    id: number,
    resolution: string,
    time: number,
    value?: number | null,
  ): Promise<AlertRow | undefined> {
    const r = await c.query<AlertRow>(
      `UPDATE alerts SET state = 'resolved', resolved_at = $3, resolution = $2, updated_at = $3, current_value = COALESCE($4, current_value)
       WHERE id = $1 AND state <> 'resolved' RETURNING ${COLUMNS}`,
      [id, resolution, toIso(time), value ?? null],
    );
    return r.rows[0];
  }

  async acknowledge(
    c: Queryable,
    id: number,
    by: string,
    notes: string | null,
    time: number,
  ): Promise<AlertRow | undefined> {
    const r = await c.query<AlertRow>(
      `UPDATE alerts SET state = 'acknowledged', acknowledged_at = $4, acknowledged_by = $2, notes = $3, updated_at = $4
       WHERE id = $1 AND state = 'firing' RETURNING ${COLUMNS}`,
      [id, by, notes, toIso(time)],
    );
    return r.rows[0];
  }

  async get(id: number, c: Queryable = this.database.readPool): Promise<AlertRow | undefined> {
    return (await c.query<AlertRow>(`SELECT ${COLUMNS} FROM alerts WHERE id = $1`, [id])).rows[0];
  }

  async activeOfRule(ruleId: number): Promise<AlertRow[]> {
    return (
      await this.database.readPool.query<AlertRow>(
        `SELECT ${COLUMNS} FROM alerts WHERE rule_id = $1 AND state <> 'resolved'`,
        [ruleId],
      )
    ).rows;
  }

  async list(f: AlertFilter): Promise<AlertRow[]> {
    const params: unknown[] = [f.states];
    const where = ['state = ANY($1::text[])'];
    if (f.severities) where.push(`severity = ANY($${params.push(f.severities)}::text[])`);
    if (f.ruleId !== undefined) where.push(`rule_id = $${params.push(f.ruleId)}`);
    if (f.source !== undefined) where.push(`(source = $${params.push(f.source)} OR service = $${params.length})`);
    if (f.beforeId !== undefined) where.push(`id < $${params.push(f.beforeId)}`);
    const r = await this.database.readPool.query<AlertRow>(
      `SELECT ${COLUMNS} FROM alerts WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${params.push(f.limit + 1)}`,
      params,
    );
    return r.rows;
  }

  /** Counts of active alerts (firing or acknowledged), by state and severity. */
  async activeCounts(): Promise<Array<{ state: AlertState; severity: Severity; n: number }>> {
    return (
      await this.database.readPool.query(
        `SELECT state, severity, count(*) AS n FROM alerts WHERE state <> 'resolved' GROUP BY 1, 2`,
      )
    ).rows;
  }

  /** The series a rule looks at (at most `limit` + 1, so the caller can tell it was cut). */
  async seriesOf(
    metric: string,
    source: string | null,
    tags: Array<{ key: string; values: string[] }>,
    limit: number,
  ): Promise<SeriesMeta[]> {
    const params: unknown[] = [metric];
    const where = ['metric = $1'];
    if (source !== null) where.push(`source = $${params.push(source)}`);
    for (const t of tags) where.push(`tags ->> $${params.push(t.key)} = ANY($${params.push(t.values)}::text[])`);
    const r = await this.database.readPool.query<SeriesMeta>(
      `SELECT id, metric, source, tags, unit FROM series WHERE ${where.join(' AND ')} ORDER BY id LIMIT ${limit + 1}`,
      params,
    );
    return r.rows;
  }

  /**
   * Per series, the WindowStats of a threshold condition over (from, now] (see evaluation.ts).
   * The operator comes from a closed set; values are bound. NaN points (stale markers) are ignored.
   */
  async thresholdStats(
    seriesIds: number[],
    condition: Condition,
    threshold: number,
    w: { from: number; now: number; fireEdge: number; resolveEdge: number; staleMs: number },
  ): Promise<Map<number, WindowStats>> {
    const op = CONDITIONS[condition].op;
    const ms = (expr: string) => `(extract(epoch FROM ${expr}) * 1000)::float8`;
    const r = await this.database.readPool.query<{
      series_id: number;
      last_time: number;
      last_value: number;
      fire_edge: number | null;
      resolve_edge: number | null;
      last_true: number | null;
      last_false: number | null;
    }>(
      `SELECT series_id,
         ${ms('max(time)')} AS last_time,
         (array_agg(value ORDER BY time DESC))[1] AS last_value,
         ${ms("max(time) FILTER (WHERE time <= $4::timestamptz AND time > $4::timestamptz - $7 * interval '1 millisecond')")} AS fire_edge,
         ${ms("max(time) FILTER (WHERE time <= $5::timestamptz AND time > $5::timestamptz - $7 * interval '1 millisecond')")} AS resolve_edge,
         ${ms(`max(time) FILTER (WHERE value ${op} $6)`)} AS last_true,
         ${ms(`max(time) FILTER (WHERE NOT (value ${op} $6))`)} AS last_false
       FROM points
       WHERE series_id = ANY($1::int[]) AND time > $2::timestamptz AND time <= $3::timestamptz AND value <> 'NaN'::float8
       GROUP BY series_id`,
      [seriesIds, toIso(w.from), toIso(w.now), toIso(w.fireEdge), toIso(w.resolveEdge), threshold, w.staleMs],
    );
    return new Map(
      r.rows.map((x) => [
        x.series_id,
        {
          lastTime: x.last_time,
          lastValue: x.last_value,
          fireEdge: x.fire_edge,
          resolveEdge: x.resolve_edge,
          lastTrue: x.last_true,
          lastFalse: x.last_false,
        },
      ]),
    );
  }

  /** The newest `limit` points of one series in (from, to], oldest first. */
  async points(
    seriesId: number,
    from: number,
    to: number,
    limit: number,
  ): Promise<Array<{ time: number; value: number }>> {
    const r = await this.database.readPool.query<{ time: number; value: number }>(
      `SELECT (extract(epoch FROM time) * 1000)::float8 AS time, value FROM points
       WHERE series_id = $1 AND time > $2::timestamptz AND time <= $3::timestamptz ORDER BY time DESC LIMIT $4`,
      [seriesId, toIso(from), toIso(to), limit],
    );
    return r.rows.reverse();
  }
}
