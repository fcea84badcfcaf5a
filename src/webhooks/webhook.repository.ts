import { Injectable } from '@nestjs/common';
import { Database, Queryable } from '../database/database.js';

export interface DeliveryRow {
  id: string;
  subject: string;
  event: string;
  url: string;
  secret: string | null;
  payload: unknown;
  status: 'pending' | 'delivered' | 'failed' | 'refused';
  attempts: number;
  max_attempts: number;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  response_status: number | null;
  last_error: string | null;
  history: unknown[];
  created_at: Date;
  finished_at: Date | null;
}

export interface NewDelivery {
  subject: string;
  event: string;
  url: string;
  secret: string | null;
  payload: unknown;
  maxAttempts: number;
  status?: 'pending' | 'refused';
  error?: string;
}

export interface AttemptRecord {
  attempt: number;
  at: string;
  status: number | null;
  error: string | null;
  duration_ms: number;
}

const COLUMNS = `id, subject, event, url, secret, payload, status, attempts, max_attempts, next_attempt_at,
  last_attempt_at, response_status, last_error, history, created_at, finished_at`;

/** The webhook delivery queue and log (table webhook_deliveries). */
@Injectable()
export class WebhookRepository {
  constructor(private readonly database: Database) {}

  /** Queues one delivery; on `c` (a caller's transaction) it commits or rolls back with the caller's change. */
  async insert(d: NewDelivery, c: Queryable = this.database.writePool): Promise<DeliveryRow> {
    const r = await c.query<DeliveryRow>(
      `INSERT INTO webhook_deliveries (subject, event, url, secret, payload, max_attempts, status, last_error, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $7 = 'refused' THEN now() END) RETURNING ${COLUMNS}`,
      [
        d.subject,
        d.event,
        d.url,
        d.secret,
        JSON.stringify(d.payload),
        d.maxAttempts,
        d.status ?? 'pending',
        d.error ?? null,
      ],
    );
    return r.rows[0];
  }

  /** Claims up to `limit` due deliveries for `leaseMs` (another instance skips them meanwhile). */
  async claimDue(limit: number, leaseMs: number): Promise<DeliveryRow[]> {
    const r = await this.database.writePool.query<DeliveryRow>(
      `UPDATE webhook_deliveries SET next_attempt_at = now() + $2 * interval '1 millisecond'
       WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING ${COLUMNS}`,
      [limit, leaseMs],
    );
    return r.rows;
  }

  async recordAttempt(
    id: string,
    outcome: {
      status: DeliveryRow['status'];
      responseStatus: number | null;
      error: string | null;
      nextAttemptAt: Date | null;
    },
    attempt: AttemptRecord,
  ): Promise<void> {
    await this.database.writePool.query(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, response_status = $3, last_error = $4,
              last_attempt_at = now(), next_attempt_at = COALESCE($5, next_attempt_at),
              history = history || $6::jsonb, finished_at = CASE WHEN $2 <> 'pending' THEN now() END
       WHERE id = $1`,
      [id, outcome.status, outcome.responseStatus, outcome.error, outcome.nextAttemptAt, JSON.stringify([attempt])],
    );
  }

  async list(filter: {
    subject?: string;
    subjectPrefix?: string;
    status?: string;
    limit: number;
  }): Promise<DeliveryRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.subject) where.push(`subject = $${params.push(filter.subject)}`);
    if (filter.subjectPrefix)
      where.push(`subject LIKE $${params.push(`${filter.subjectPrefix.replace(/[\\%_]/g, '\\$&')}%`)}`);
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    params.push(filter.limit);
    const r = await this.database.readPool.query<DeliveryRow>(
      `SELECT ${COLUMNS} FROM webhook_deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return r.rows;
  }

  async get(id: string): Promise<DeliveryRow | undefined> {
    const r = await this.database.readPool.query<DeliveryRow>(
      `SELECT ${COLUMNS} FROM webhook_deliveries WHERE id = $1`,
      [id],
    );
    return r.rows[0];
  }

  /** The log is operational history, not metrics: finished entries older than `days` go. */
  async prune(days: number): Promise<number> {
    const r = await this.database.writePool.query(
      `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < now() - $1 * interval '1 day'`,
      [days],
    );
    return r.rowCount ?? 0;
  }
}
