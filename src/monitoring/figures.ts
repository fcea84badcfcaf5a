/**
 * Timescope's own figures as plain data: what the HTTP hook, the writer and the other modules
 * counted since start (cumulative), the difference between two such snapshots (one interval), how an
 * interval is stored as points (the `timescope_*` series of source `timescope`), how stored rows are
 * read back into intervals, and the monitoring API's summaries of them. Pure functions, no NestJS.
 */

/** Upper bounds (seconds) of the request latency buckets: milliseconds to half a minute. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Where persisted self-metrics live: source `timescope`, one `instance` tag per process. */
export const SELF_SOURCE = 'timescope';

export const statusClass = (status: number): StatusClass =>
  STATUS_CLASSES[Math.min(4, Math.max(0, Math.floor(status / 100) - 1))];

/** Index of the latency bucket `seconds` falls in (the last one is +Inf). */
export function bucketIndex(seconds: number): number {
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]) return i;
  return LATENCY_BUCKETS.length;
}

/** One HTTP error kind: `${method}\0${route}\0${status}\0${code}`. */
export const errorKey = (method: string, route: string, status: number, code: string) =>
  `${method}\u0000${route}\u0000${status}\u0000${code}`;
export function parseErrorKey(key: string): { method: string; route: string; status: number; code: string } {
  const [method, route, status, code] = key.split('\u0000');
  return { method, route, status: Number(status), code };
}
/** One job outcome: `${job}\0${outcome}`. */
export const jobKey = (job: string, outcome: string) => `${job}\u0000${outcome}`;

/** Counts since start (or of one interval, as the difference of two snapshots). */
export interface Figures {
  requests: Record<StatusClass, number>;
  /** Requests per latency bucket, not cumulative; the last entry is +Inf. */
  buckets: number[];
  /** Seconds, over every request counted. */
  durationSum: number;
  requestBytes: number;
  responseBytes: number;
  /** HTTP answers with status >= 400, by errorKey. */
  errors: Map<string, number>;
  /** Points committed, except the self-metrics' own. */
  ingestPoints: number;
  /** Messages sent to live-stream clients. */
  streamMessages: number;
  /** Job runs by jobKey. */
  jobRuns: Map<string, number>;
  /** Webhook deliveries by how they ended (delivered, failed, refused) and attempts to be retried (retrying). */
  webhooks: Map<string, number>;
}

/** An interval: its figures, how long it lasted, and the fastest and slowest request (seconds; ±Infinity when none). */
export interface Sample extends Figures {
  seconds: number;
  min: number;
  max: number;
}

export function emptyFigures(): Figures {
  return {
    requests: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0),
    durationSum: 0,
    requestBytes: 0,
    responseBytes: 0,
    errors: new Map(),
    ingestPoints: 0,
    streamMessages: 0,
    jobRuns: new Map(),
    webhooks: new Map(),
  };
}

export function emptySample(): Sample {
  return { ...emptyFigures(), seconds: 0, min: Infinity, max: -Infinity };
}

export function cloneFigures(f: Figures): Figures {
  return {
    ...f,
    requests: { ...f.requests },
    buckets: [...f.buckets],
    errors: new Map(f.errors),
    jobRuns: new Map(f.jobRuns),
    webhooks: new Map(f.webhooks),
  };
}

function mapDelta(now: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of now) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

/** What happened between two cumulative snapshots. */
export function delta(now: Figures, before: Figures): Figures {
  const requests = { ...now.requests };
  for (const c of STATUS_CLASSES) requests[c] = Math.max(0, now.requests[c] - before.requests[c]);
  return {
    requests,
    buckets: now.buckets.map((v, i) => Math.max(0, v - before.buckets[i])),
    durationSum: Math.max(0, now.durationSum - before.durationSum),
    requestBytes: Math.max(0, now.requestBytes - before.requestBytes),
    responseBytes: Math.max(0, now.responseBytes - before.responseBytes),
    errors: mapDelta(now.errors, before.errors),
    ingestPoints: Math.max(0, now.ingestPoints - before.ingestPoints),
    streamMessages: Math.max(0, now.streamMessages - before.streamMessages),
    jobRuns: mapDelta(now.jobRuns, before.jobRuns),
    webhooks: mapDelta(now.webhooks, before.webhooks),
  };
}

const addMap = (into: Map<string, number>, from: Map<string, number>) => {
  for (const [k, v] of from) into.set(k, (into.get(k) ?? 0) + v);
};

/** Adds `b` into `a` (intervals of one bucket, or of one period). */
export function addSample(a: Sample, b: Sample): Sample {
  for (const c of STATUS_CLASSES) a.requests[c] += b.requests[c];
  for (let i = 0; i < a.buckets.length; i++) a.buckets[i] += b.buckets[i];
  a.durationSum += b.durationSum;
  a.requestBytes += b.requestBytes;
  a.responseBytes += b.responseBytes;
  addMap(a.errors, b.errors);
  a.ingestPoints += b.ingestPoints;
  a.streamMessages += b.streamMessages;
  addMap(a.jobRuns, b.jobRuns);
  addMap(a.webhooks, b.webhooks);
  a.seconds += b.seconds;
  a.min = Math.min(a.min, b.min);
  a.max = Math.max(a.max, b.max);
  return a;
}

export const totalRequests = (f: Figures) => STATUS_CLASSES.reduce((n, c) => n + f.requests[c], 0);

/** A point of the persisted self-metrics. */
export interface SelfPoint {
  metric: string;
  tags: Record<string, string>;
  unit: string;
  value: number;
}

/** The persisted series (all of source `timescope`; values are counts of one interval, not running totals). */
export const SELF_SERIES = {
  interval: 'timescope_interval_seconds',
  requests: 'timescope_http_requests',
  bucket: 'timescope_http_request_duration_bucket',
  sum: 'timescope_http_request_duration_sum',
  min: 'timescope_http_request_duration_min',
  max: 'timescope_http_request_duration_max',
  requestBytes: 'timescope_http_request_bytes',
  responseBytes: 'timescope_http_response_bytes',
  errors: 'timescope_http_errors',
  ingest: 'timescope_ingest_points',
  streamMessages: 'timescope_stream_messages',
  jobRuns: 'timescope_job_runs',
  webhooks: 'timescope_webhook_deliveries',
} as const;

export const leLabel = (i: number) => (i < LATENCY_BUCKETS.length ? String(LATENCY_BUCKETS[i]) : '+Inf');

/**
 * One interval as points: always its length; the rest only where something happened (a missing
 * point reads as zero). Latency buckets are cumulative within the interval, as Prometheus' are, so
 * that sums over intervals stay cumulative.
 */
export function samplePoints(s: Sample, instance: string): SelfPoint[] {
  const out: SelfPoint[] = [];
  const add = (metric: string, unit: string, value: number, tags: Record<string, string> = {}) => {
    if (Number.isFinite(value)) out.push({ metric, unit, value, tags: { instance, ...tags } });
  };
  add(SELF_SERIES.interval, 's', s.seconds);
  for (const c of STATUS_CLASSES)
    if (s.requests[c] > 0) add(SELF_SERIES.requests, 'requests', s.requests[c], { status_class: c });
  const n = s.buckets.reduce((a, b) => a + b, 0);
  if (n > 0) {
    let cumulative = 0;
    s.buckets.forEach((v, i) => {
      cumulative += v;
      add(SELF_SERIES.bucket, 'requests', cumulative, { le: leLabel(i) });
    });
    add(SELF_SERIES.sum, 's', s.durationSum);
    add(SELF_SERIES.min, 's', s.min);
    add(SELF_SERIES.max, 's', s.max);
  }
  if (s.requestBytes > 0) add(SELF_SERIES.requestBytes, 'bytes', s.requestBytes);
  if (s.responseBytes > 0) add(SELF_SERIES.responseBytes, 'bytes', s.responseBytes);
  for (const [key, v] of s.errors) {
    const e = parseErrorKey(key);
    add(SELF_SERIES.errors, 'requests', v, {
      method: e.method,
      route: e.route,
      status: String(e.status),
      code: e.code,
    });
  }
  if (s.ingestPoints > 0) add(SELF_SERIES.ingest, 'points', s.ingestPoints);
  if (s.streamMessages > 0) add(SELF_SERIES.streamMessages, 'messages', s.streamMessages);
  for (const [key, v] of s.jobRuns) {
    const [job, outcome] = key.split('\u0000');
    add(SELF_SERIES.jobRuns, 'runs', v, { job, outcome });
  }
  for (const [outcome, v] of s.webhooks) add(SELF_SERIES.webhooks, 'deliveries', v, { outcome });
  return out;
}

/**
 * Reads stored aggregates (the sum, min and max of a series over a bucket of time) back into one
 * sample: the inverse of samplePoints. Unknown series are ignored.
 */
export class StoredReader {
  private readonly s = emptySample();
  /** Latency buckets as stored: cumulative, summed over intervals. */
  private readonly cumulative = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);

  add(metric: string, tags: Record<string, string>, sum: number, min: number, max: number): void {
    const s = this.s;
    switch (metric) {
      case SELF_SERIES.interval:
        s.seconds += sum;
        break;
      case SELF_SERIES.requests: {
        const c = tags.status_class as StatusClass;
        if (c in s.requests) s.requests[c] += sum;
        break;
      }
      case SELF_SERIES.bucket: {
        const i =
          tags.le === '+Inf'
            ? LATENCY_BUCKETS.length
            : LATENCY_BUCKETS.indexOf(Number(tags.le) as (typeof LATENCY_BUCKETS)[number]);
        if (i >= 0) this.cumulative[i] += sum;
        break;
      }
      case SELF_SERIES.sum:
        s.durationSum += sum;
        break;
      case SELF_SERIES.min:
        s.min = Math.min(s.min, min);
        break;
      case SELF_SERIES.max:
        s.max = Math.max(s.max, max);
        break;
      case SELF_SERIES.requestBytes:
        s.requestBytes += sum;
        break;
      case SELF_SERIES.responseBytes:
        s.responseBytes += sum;
        break;
      case SELF_SERIES.errors: {
        const key = errorKey(tags.method ?? '', tags.route ?? '', Number(tags.status), tags.code ?? '');
        s.errors.set(key, (s.errors.get(key) ?? 0) + sum);
        break;
      }
      case SELF_SERIES.ingest:
        s.ingestPoints += sum;
        break;
      case SELF_SERIES.streamMessages:
        s.streamMessages += sum;
        break;
      case SELF_SERIES.jobRuns: {
        const key = jobKey(tags.job ?? '', tags.outcome ?? '');
        s.jobRuns.set(key, (s.jobRuns.get(key) ?? 0) + sum);
        break;
      }
      case SELF_SERIES.webhooks:
        s.webhooks.set(tags.outcome ?? '', (s.webhooks.get(tags.outcome ?? '') ?? 0) + sum);
        break;
    }
  }

  /** The sample read so far, its latency buckets turned back into counts per bucket. */
  finish(): Sample {
    const c = this.cumulative;
    const out = { ...this.s, buckets: c.map((v, i) => Math.max(0, v - (i > 0 ? c[i - 1] : 0))) };
    return out;
  }
}

/**
 * The q-quantile (0..1) of requests counted in latency buckets, interpolated linearly inside its
 * bucket as Prometheus' histogram_quantile does, and kept within the fastest and slowest request
 * seen (which also bounds the +Inf bucket). Null without requests.
 */
export function quantile(q: number, buckets: readonly number[], min: number, max: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let before = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i];
    if (n > 0 && before + n >= rank) {
      let lower = i === 0 ? 0 : LATENCY_BUCKETS[i - 1];
      let upper = i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i] : Number.isFinite(max) ? max : lower;
      if (Number.isFinite(min)) lower = Math.max(lower, Math.min(min, upper));
      if (Number.isFinite(max)) upper = Math.min(upper, Math.max(max, lower));
      return lower + (upper - lower) * ((rank - before) / n);
    }
    before += n;
  }
  return Number.isFinite(max) ? max : LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1];
}

const ms = (seconds: number | null) =>
  seconds === null || !Number.isFinite(seconds) ? null : Math.round(seconds * 1e5) / 100;
const ratio = (n: number, d: number) => (d > 0 ? Math.round((n / d) * 1e6) / 1e6 : null);
const perSecond = (n: number, seconds: number) => (seconds > 0 ? Math.round((n / seconds) * 1000) / 1000 : null);

/** Requests answered 408 or 504: the service or the client ran out of time. */
export function timeouts(f: Figures): number {
  let n = 0;
  for (const [key, v] of f.errors) {
    const status = Number(key.split('\u0000')[2]);
    if (status === 408 || status === 504) n += v;
  }
  return n;
}

/** The monitoring reference's performance block for one sample (a bucket, or the whole period). */
export function performanceOf(s: Sample) {
  const requests = totalRequests(s);
  return {
    requests,
    response_times:
      requests === 0
        ? null
        : {
            p50: ms(quantile(0.5, s.buckets, s.min, s.max)),
            p95: ms(quantile(0.95, s.buckets, s.min, s.max)),
            p99: ms(quantile(0.99, s.buckets, s.min, s.max)),
            mean: ms(s.durationSum / requests),
            min: ms(s.min),
            max: ms(s.max),
          },
    throughput: {
      requests_per_second: perSecond(requests, s.seconds),
      messages_per_second: perSecond(s.ingestPoints, s.seconds),
      bytes_per_second: perSecond(s.requestBytes + s.responseBytes, s.seconds),
      bytes_received_per_second: perSecond(s.requestBytes, s.seconds),
      bytes_sent_per_second: perSecond(s.responseBytes, s.seconds),
      stream_messages_per_second: perSecond(s.streamMessages, s.seconds),
    },
    error_rates: {
      client_errors: ratio(s.requests['4xx'], requests),
      server_errors: ratio(s.requests['5xx'], requests),
      timeout_errors: ratio(timeouts(s), requests),
    },
    covered_seconds: Math.round(s.seconds * 1000) / 1000,
  };
}
