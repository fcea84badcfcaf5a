import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import { ApiError } from '../common/errors.js';
import { isObject } from '../common/input.js';
import { AppConfig } from '../config/config.js';
import { CommittedPoint, PointEncoder, StreamHub, StreamTarget } from './stream-hub.js';
import { WsClient } from './ws-client.js';
import { describeFilter, filterPairs, IndexEntry, MAX_FILTER_PAIRS, parseFilter } from './stream-filter.js';

/** Largest client message: subscriptions are small (ws closes with 1009 past it). */
export const WS_MAX_MESSAGE_BYTES = 64 * 1024;

const errorMessage = (err: ApiError, action: unknown, requestId: unknown) =>
  JSON.stringify({
    type: 'error',
    ...(typeof action === 'string' ? { action } : {}),
    ...(requestId !== undefined ? { request_id: requestId } : {}),
    error: err.body(),
  });

/**
 * One WebSocket client of /ws/metrics. Messages (collector-api.md "Real-time Streaming"):
 *   {"action": "subscribe", "metrics": [...], "sources": [...], "tags": {...}}  → {"type": "subscribed", "subscription_id", ...}
 *   {"action": "unsubscribe", "subscription_id": 3}  (without an id: every subscription) → {"type": "unsubscribed", ...}
 *   {"action": "list"} → {"type": "subscriptions", ...};  {"action": "ping"} → {"type": "pong"}
 * An optional "id" in a message comes back as "request_id". Points arrive as
 *   {"type": "metric_update", "source", "timestamp", "metric": {"name", "value", "unit", "tags"}}.
 * A bad message gets {"type": "error", "error": {code, message, details}}; the socket stays open.
 */
export class WsSession extends WsClient {
  private readonly subs = new Map<number, IndexEntry<StreamTarget>>();
  private nextSubscription = 1;
  /** Throws (503) when the hub is at its connection cap. */
  constructor(
    socket: WebSocket,
    req: IncomingMessage,
    hub: StreamHub,
    private readonly config: AppConfig,
  ) {
    super(socket, req, hub);
  }

  accept(_p: CommittedPoint, enc: PointEncoder, now: number): void {
    this.connection.deliver(enc.wsMessage(), now);
  }

  protected onMessage(data: RawData, isBinary: boolean, now: number): void {
    let msg: unknown;
    try {
      if (isBinary) throw new Error('binary frames are not understood; send JSON text');
      msg = JSON.parse(data.toString());
    } catch (err) {
      this.fail(
        new ApiError(400, 'INVALID_REQUEST', `Message must be a JSON object: ${(err as Error).message}`),
        undefined,
        undefined,
      );
      return;
    }
    const m = isObject(msg) ? msg : undefined;
    try {
      if (!m)
        throw new ApiError(
          400,
          'INVALID_REQUEST',
          'Message must be a JSON object {"action": "subscribe" | "unsubscribe" | "list" | "ping", ...}',
          { field: 'action' },
        );
      switch (m.action) {
        case 'subscribe':
          return this.subscribe(m);
        case 'unsubscribe':
          return this.unsubscribe(m);
        case 'list':
          return this.send(
            {
              type: 'subscriptions',
              subscriptions: [...this.subs].map(([id, e]) => ({ subscription_id: id, ...describeFilter(e.filter) })),
            },
            m.id,
          );
        case 'ping':
          return this.send({ type: 'pong', timestamp: new Date(now).toISOString() }, m.id);
        default:
          throw new ApiError(
            400,
            'INVALID_REQUEST',
            `action must be one of subscribe, unsubscribe, list, ping (got ${JSON.stringify(m.action)})`,
            { field: 'action' },
          );
      }
    } catch (err) {
      if (err instanceof ApiError) this.fail(err, m?.action, m?.id);
      else {
        WsClient.logger.error(`message handling failed: ${(err as Error).stack ?? err}`);
        this.fail(new ApiError(500, 'INTERNAL_ERROR', 'Internal error'), m?.action, m?.id);
      }
    }
  }

  private subscribe(m: Record<string, unknown>): void {
    const filter = parseFilter(m);
    const max = this.config.streams.maxSubscriptions;
    if (this.subs.size >= max) {
      throw new ApiError(
        400,
        'INVALID_REQUEST',
        `At most ${max} subscriptions per connection (STREAM_MAX_SUBSCRIPTIONS); unsubscribe first or combine filters`,
        {
          limit: 'STREAM_MAX_SUBSCRIPTIONS',
          max,
        },
      );
    }
    const pairs = [...this.subs.values()].reduce((n, e) => n + filterPairs(e.filter), 0) + filterPairs(filter);
    if (pairs > MAX_FILTER_PAIRS) {
      throw new ApiError(
        400,
        'INVALID_REQUEST',
        `A connection watches at most ${MAX_FILTER_PAIRS} (metric, source) pairs in all its subscriptions (this one would make ${pairs}); combine or unsubscribe`,
        {
          field: 'metrics',
          max_pairs: MAX_FILTER_PAIRS,
        },
      );
    }
    const id = this.nextSubscription++;
    this.subs.set(id, this.hub.subscribe(filter, this));
    this.send({ type: 'subscribed', subscription_id: id, ...describeFilter(filter) }, m.id);
  }

  private unsubscribe(m: Record<string, unknown>): void {
    let ids: number[];
    if (m.subscription_id === undefined || m.subscription_id === null) ids = [...this.subs.keys()];
    else if (typeof m.subscription_id === 'number' && this.subs.has(m.subscription_id)) ids = [m.subscription_id];
    else
      throw new ApiError(
        404,
        'RESOURCE_NOT_FOUND',
        `No subscription ${JSON.stringify(m.subscription_id)} on this connection`,
        { field: 'subscription_id' },
      );
    for (const id of ids) {
      this.hub.unsubscribe(this.subs.get(id)!);
      this.subs.delete(id);
    }
    this.send({ type: 'unsubscribed', subscription_ids: ids }, m.id);
  }

  private send(body: Record<string, unknown>, requestId: unknown): void {
    this.connection.reply(JSON.stringify(requestId !== undefined ? { ...body, request_id: requestId } : body));
  }

  private fail(err: ApiError, action: unknown, requestId: unknown): void {
    this.connection.reply(errorMessage(err, action, requestId));
  }

  protected override onClose(): void {
    for (const e of this.subs.values()) this.hub.unsubscribe(e);
    this.subs.clear();
  }
}
