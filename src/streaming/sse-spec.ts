import { invalidQuery } from '../common/errors.js';
import { oneString } from '../common/input.js';
import { parseDuration } from '../common/time.js';
import { parseFilter, StreamFilter } from './stream-filter.js';

/**
 * GET /api/v1/metrics/stream parameters (collector-api.md "Server-Sent Events"). Pure.
 * Without `interval`: every committed point that matches, as it commits. With `interval`
 * (seconds, or a duration such as 5s or 1m): per series, the latest value (`aggregation=last`,
 * the default) or a bucket aggregate (avg, min, max, sum, count) every interval.
 */
export const STREAM_AGGREGATIONS = ['last', 'avg', 'min', 'max', 'sum', 'count'] as const;
export type StreamAggregation = (typeof STREAM_AGGREGATIONS)[number];

export const MIN_INTERVAL_MS = 1_000;
export const MAX_INTERVAL_MS = 3_600_000;

export interface SseSpec {
  filter: StreamFilter;
  intervalMs: number | null;
  aggregation: StreamAggregation;
  /** Last-Event-ID header, or `last_event_id` for clients that cannot set headers. */
  lastEventId: string | null;
}

const one = (v: unknown) => (Array.isArray(v) ? v.join(',') : v);

export function parseSseSpec(q: Record<string, unknown>, lastEventIdHeader: string | undefined): SseSpec {
  const filter = parseFilter(
    { metrics: one(q.metrics ?? q.metric), sources: one(q.sources ?? q.source), tags: q.tags },
    'INVALID_QUERY',
  );
  let intervalMs: number | null = null;
  const iv = oneString(q.interval, 'interval');
  if (iv !== undefined && iv !== '') {
    const s = iv.trim();
    intervalMs = /^\d+(\.\d+)?$/.test(s) ? Number(s) * 1000 : parseDuration(s);
    if (
      !Number.isFinite(intervalMs) ||
      intervalMs < MIN_INTERVAL_MS ||
      intervalMs > MAX_INTERVAL_MS ||
      intervalMs % 1000 !== 0
    ) {
      throw invalidQuery(
        'interval',
        `interval must be whole seconds from ${MIN_INTERVAL_MS / 1000} to ${MAX_INTERVAL_MS / 1000} (5, 5s, 1m); got ${JSON.stringify(iv)}`,
      );
    }
  }
  const agg = oneString(q.aggregation, 'aggregation');
  let aggregation: StreamAggregation = 'last';
  if (agg !== undefined && agg !== '') {
    if (!(STREAM_AGGREGATIONS as readonly unknown[]).includes(agg))
      throw invalidQuery('aggregation', `aggregation must be one of ${STREAM_AGGREGATIONS.join(', ')}`);
    if (intervalMs === null)
      throw invalidQuery(
        'aggregation',
        'aggregation needs an interval (without one, every point is sent as it commits)',
      );
    aggregation = agg as StreamAggregation;
  }
  const id = lastEventIdHeader ?? (typeof q.last_event_id === 'string' ? q.last_event_id : undefined);
  return { filter, intervalMs, aggregation, lastEventId: id && id.length <= 64 ? id : null };
}

/** Live ids are `<boot>.<seq>`. */
export function parseLiveId(id: string | null): { boot: string; seq: number } | undefined {
  const m = id ? /^([0-9a-f]{8})\.(\d{1,15})$/.exec(id) : null;
  return m ? { boot: m[1], seq: Number(m[2]) } : undefined;
}

/** Interval ids are the end of the interval, in epoch ms. */
export function parseIntervalId(id: string | null): number | undefined {
  return id && /^\d{1,15}$/.test(id) ? Number(id) : undefined;
}
