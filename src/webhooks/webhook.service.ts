import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ApiError, invalidQuery, notFound } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import { AppConfig } from '../config/config.js';
import type { Queryable } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import {
  isRetryable,
  nodeTransport,
  retryDelayMs,
  SIGNATURE_HEADER,
  signPayload,
  WebhookTransport,
} from './delivery.js';
import {
  checkWebhookUrl,
  GuardOptions,
  parseWebhookUrl,
  resolveWebhookTarget,
  Resolver,
  systemResolver,
  UnsafeUrlError,
} from './url-guard.js';
import { DeliveryRow, NewDelivery, WebhookRepository } from './webhook.repository.js';

export interface Notification {
  /** What the webhook is about, e.g. `alert:42` or `pipeline:7`; deliveries are listed by it. */
  subject: string;
  /** e.g. `alert.firing`, `alert.resolved`, `pipeline.output`. */
  event: string;
  url: string;
  /** Shared secret for the HMAC signature header; unsigned when absent. */
  secret?: string | null;
  payload: unknown;
}

export type PublicDelivery = Omit<DeliveryRow, 'secret'> & { signed: boolean };

const LOG_DAYS = 30;

/**
 * Outgoing webhooks for every capability (alert notifications, pipeline outputs). Notifications go
 * into a durable queue (webhook_deliveries) and are sent soon after, signed (HMAC-SHA256), retried
 * with exponential backoff and jitter on network errors, 408/425/429 and 5xx, never redirected,
 * and checked against internal addresses when saved and again, with the resolved address pinned,
 * when sent. Every attempt is logged in the row's history.
 */
@Injectable()
export class WebhookService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('webhooks');
  private transport: WebhookTransport = nodeTransport;
  private resolver: Resolver = systemResolver;
  private draining?: Promise<DrainReport>;
  private kickedWhileDraining = false;
  private closing = false;
  private readonly guard: GuardOptions;
  /** Deliveries of this instance since start by how they ended, and attempts that will be retried (self-metrics). */
  readonly stats = { delivered: 0, failed: 0, refused: 0, retries: 0 };

  constructor(
    private readonly repo: WebhookRepository,
    private readonly config: AppConfig,
    private readonly jobs: JobsService,
  ) {
    this.guard = { allowPrivate: config.webhooks.allowPrivate };
  }

  onModuleInit(): void {
    this.jobs.register({
      name: 'webhook-dispatch',
      description: 'Sends due webhook deliveries (retries, and anything another instance left behind)',
      every: () => 5_000,
      run: () => this.drain(),
    });
    this.jobs.register({
      name: 'webhook-log-prune',
      description: `Forgets finished webhook deliveries older than ${LOG_DAYS} days`,
      every: () => 6 * 3_600_000,
      run: async () => ({ deleted: await this.repo.prune(LOG_DAYS) }),
    });
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    await this.draining;
  }

  /** Test seam: the HTTP client. */
  useTransport(transport: WebhookTransport): void {
    this.transport = transport;
  }

  /** Test seam: DNS. */
  useResolver(resolver: Resolver): void {
    this.resolver = resolver;
  }

  /** The save-time check: 400 naming `field` unless the URL is an allowed, resolvable, public target. */
  async assertSafeUrl(url: unknown, field: string): Promise<string> {
    if (typeof url !== 'string' || url === '')
      throw new ApiError(400, 'INVALID_REQUEST', `${field}: is required and must be a URL`, { field });
    try {
      return (await checkWebhookUrl(url, this.guard, this.resolver)).toString();
    } catch (err) {
      if (err instanceof UnsafeUrlError)
        throw new ApiError(400, 'INVALID_REQUEST', `${field}: ${err.message}`, { field });
      throw err;
    }
  }

  /** Queues a notification and starts sending; a URL that fails the static checks is logged as refused. */
  async enqueue(n: Notification): Promise<PublicDelivery> {
    const row = await this.repo.insert(this.newDelivery(n));
    if (row.status === 'pending') this.kick();
    else if (row.status === 'refused') this.stats.refused++;
    return publicDelivery(row);
  }

  /**
   * Queues a notification inside the caller's transaction on `client`, so that the delivery row
   * commits with the change it reports, or not at all (no lost or duplicated notification). The
   * row is invisible to the sender until then: the caller calls kick() after its COMMIT.
   */
  async enqueueIn(client: Queryable, n: Notification): Promise<PublicDelivery> {
    const row = await this.repo.insert(this.newDelivery(n), client);
    if (row.status === 'refused') this.stats.refused++; // counted even if the caller then rolls back (rare)
    return publicDelivery(row);
  }

  async list(query: { subject?: unknown; status?: unknown; limit?: unknown }): Promise<PublicDelivery[]> {
    const limit = query.limit === undefined ? 100 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw invalidQuery('limit', 'limit must be an integer from 1 to 1000');
    if (query.status !== undefined && !['pending', 'delivered', 'failed', 'refused'].includes(String(query.status))) {
      throw invalidQuery('status', 'status must be one of pending, delivered, failed, refused');
    }
    const rows = await this.repo.list({
      subject: typeof query.subject === 'string' ? query.subject : undefined,
      status: query.status as string | undefined,
      limit,
    });
    return rows.map(publicDelivery);
  }

  /** Deliveries of every subject starting with `prefix` (e.g. `alert:`), newest first. */
  async listBySubjectPrefix(prefix: string, limit = 100): Promise<PublicDelivery[]> {
    return (await this.repo.list({ subjectPrefix: prefix, limit })).map(publicDelivery);
  }

  async get(id: string): Promise<PublicDelivery> {
    // Up to 15 digits, as pipeline ids: a longer one is no delivery (and past bigint, not a 422 from the cast).
    const row = /^\d{1,15}$/.test(id) ? await this.repo.get(id) : undefined;
    if (!row) throw notFound(`No webhook delivery ${id}`);
    return publicDelivery(row);
  }

  /**
   * Starts a drain, or, when one is running, asks it to look once more when it ends: a delivery
   * that fell due (or was queued) after the drain's last claim would otherwise wait for the next
   * run of the dispatch job.
   */
  kick(): void {
    if (this.closing) return;
    if (this.draining) {
      this.kickedWhileDraining = true;
      return;
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.kickedWhileDraining) {
        this.kickedWhileDraining = false;
        this.kick();
      }
    });
  }

  /** Sends every due delivery (in parallel up to WEBHOOK_CONCURRENCY) until none is due. */
  async drain(): Promise<DrainReport> {
    const report: DrainReport = { attempted: 0, delivered: 0, retrying: 0, failed: 0 };
    const { concurrency, timeoutMs } = this.config.webhooks;
    for (;;) {
      // The claim outlasts an attempt (lookup and answer, each cut off at WEBHOOK_TIMEOUT_MS), so no
      // other drain, here or on another instance, sends the same delivery while it is under way.
      const rows = await this.repo.claimDue(concurrency, timeoutMs * 2 + 5_000);
      if (rows.length === 0) return report;
      const outcomes = await Promise.all(rows.map((r) => this.attempt(r)));
      for (const o of outcomes) {
        report.attempted++;
        report[o === 'pending' ? 'retrying' : o === 'delivered' ? 'delivered' : 'failed']++;
      }
      if (this.closing) return report;
    }
  }

  /** The row to queue; a URL that fails the static checks (scheme, literal internal address) is queued as refused. */
  private newDelivery(n: Notification): NewDelivery {
    let refused: string | undefined;
    try {
      parseWebhookUrl(n.url, this.guard);
    } catch (err) {
      if (!(err instanceof UnsafeUrlError)) throw err;
      refused = err.message;
    }
    return {
      subject: n.subject,
      event: n.event,
      url: n.url,
      secret: n.secret ?? null,
      payload: n.payload,
      maxAttempts: this.config.webhooks.maxAttempts,
      status: refused ? 'refused' : 'pending',
      error: refused,
    };
  }

  private async attempt(row: DeliveryRow): Promise<DeliveryRow['status']> {
    const attempt = row.attempts + 1;
    const t0 = performance.now();
    let status: DeliveryRow['status'];
    let responseStatus: number | null = null;
    let error: string | null = null;
    let retryAfter: number | undefined;
    try {
      const url = parseWebhookUrl(row.url, this.guard);
      // The name lookup is cut off at WEBHOOK_TIMEOUT_MS too, so an attempt ends within its claim (see drain).
      const [address] = await withDeadline(
        resolveWebhookTarget(url, this.guard, this.resolver),
        this.config.webhooks.timeoutMs,
        `${url.hostname} did not resolve within ${this.config.webhooks.timeoutMs} ms`,
      );
      const body = JSON.stringify(row.payload);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': `Timescope/${VERSION}`,
        'x-timescope-event': row.event,
        'x-timescope-delivery': row.id,
        'x-timescope-attempt': String(attempt),
      };
      if (row.secret) headers[SIGNATURE_HEADER] = signPayload(row.secret, Math.floor(Date.now() / 1000), body);
      const res = await this.transport({
        url,
        address,
        headers,
        body,
        timeoutMs: this.config.webhooks.timeoutMs,
      });
      responseStatus = res.status;
      retryAfter = res.retryAfterSeconds;
      if (res.status >= 200 && res.status < 300) status = 'delivered';
      else {
        error =
          res.status >= 300 && res.status < 400
            ? `answered ${res.status}: redirects are not followed`
            : `answered ${res.status}`;
        status = isRetryable(res.status) && attempt < row.max_attempts ? 'pending' : 'failed';
      }
    } catch (err) {
      error = (err as Error)?.message ?? String(err);
      status = err instanceof UnsafeUrlError ? 'refused' : attempt < row.max_attempts ? 'pending' : 'failed';
    }
    const { retryBaseMs, retryMaxMs } = this.config.webhooks;
    const next =
      status === 'pending' ? new Date(Date.now() + retryDelayMs(attempt, retryBaseMs, retryMaxMs, retryAfter)) : null;
    const duration = Math.round((performance.now() - t0) * 100) / 100;
    this.stats[status === 'pending' ? 'retries' : status]++;
    await this.repo.recordAttempt(
      row.id,
      { status, responseStatus, error, nextAttemptAt: next },
      { attempt, at: new Date().toISOString(), status: responseStatus, error, duration_ms: duration },
    );
    if (status !== 'delivered')
      this.logger.warn(
        `delivery ${row.id} (${row.event}) attempt ${attempt}: ${error}${status === 'pending' ? `; retrying at ${next!.toISOString()}` : `; ${status}`}`,
      );
    if (status === 'pending') setTimeout(() => this.kick(), next!.getTime() - Date.now() + 10).unref();
    return status;
  }
}

export interface DrainReport {
  attempted: number;
  delivered: number;
  retrying: number;
  failed: number;
  [k: string]: number;
}

/** `promise`, or a rejection with `message` after `ms` (the work itself is left to finish or fail on its own). */
function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function publicDelivery(row: DeliveryRow): PublicDelivery {
  const { secret, ...rest } = row;
  return { ...rest, signed: Boolean(secret) };
}
