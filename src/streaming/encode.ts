import { toIsoMicros } from '../common/time.js';
import type { SeriesIdentity } from './stream-filter.js';

/**
 * Wire formats of streamed points, built from per-series templates so that a point costs two
 * string concatenations, not a JSON.stringify of a fresh object. Pure.
 */

export interface StreamSeries extends SeriesIdentity {
  /** Identity of the series (metric, source, canonical tags): the template cache key. */
  readonly key: string;
  readonly unit: string | null;
}

/** JSON has no NaN or Infinity: they travel as null (the points table may hold them from other protocols). */
export const jsonNumber = (v: number) => (Number.isFinite(v) ? String(v) : 'null');

interface Template {
  unit: string | null;
  /** WebSocket `metric_update` (collector-api.md "Real-time Message Format"): head + iso + mid + value + tail. */
  wsHead: string;
  wsMid: string;
  wsTail: string;
  /** SSE data: head + value + mid + iso + tail. */
  sseHead: string;
  sseMid: string;
  sseTail: string;
}

function template(s: StreamSeries): Template {
  const source = JSON.stringify(s.source),
    name = JSON.stringify(s.metric),
    unit = JSON.stringify(s.unit),
    tags = JSON.stringify(s.tags);
  return {
    unit: s.unit,
    wsHead: `{"type":"metric_update","source":${source},"timestamp":"`,
    wsMid: `","metric":{"name":${name},"value":`,
    wsTail: `,"unit":${unit},"tags":${tags}}}`,
    sseHead: `{"metric":${name},"value":`,
    sseMid: `,"timestamp":"`,
    sseTail: `","source":${source},"unit":${unit},"tags":${tags}}`,
  };
}

/** Templates per series, bounded (cleared when full: rebuilding one is cheap). */
export class TemplateCache {
  private readonly map = new Map<string, Template>();

  constructor(private readonly max = 50_000) {}

  get(s: StreamSeries): Template {
    let t = this.map.get(s.key);
    if (t === undefined || t.unit !== s.unit) {
      if (this.map.size >= this.max) this.map.clear();
      t = template(s);
      this.map.set(s.key, t);
    }
    return t;
  }
}

/**
 * `2024-01-15T10:30:00.000Z` (with microseconds when the point has them, as exports and query
 * answers show them), memoised for runs of points with one timestamp (the common case).
 */
export class IsoClock {
  private last = NaN;
  private text = '';

  iso(ms: number): string {
    if (ms !== this.last) {
      this.last = ms;
      this.text = toIsoMicros(ms);
    }
    return this.text;
  }
}

export function wsMetricUpdate(t: Template, iso: string, value: number): string {
  return t.wsHead + iso + t.wsMid + jsonNumber(value) + t.wsTail;
}

export function sseData(t: Template, iso: string, value: number): string {
  return t.sseHead + jsonNumber(value) + t.sseMid + iso + t.sseTail;
}

/** One SSE event: optional id and event name, then the data line; ends with the blank line. */
export function sseEvent(data: string, id?: string, event?: string): string {
  return `${event ? `event: ${event}\n` : ''}${id !== undefined ? `id: ${id}\n` : ''}data: ${data}\n\n`;
}
