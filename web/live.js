// Pure helpers of the live page (no DOM, no network), so that Node can test them as they run in the browser.

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90s", "5m", "1h", "7d", "2w" → milliseconds; anything else → null. */
export function durationMs(text) {
  const m = /^(\d+)([smhdw])$/.exec(String(text));
  return m ? Number(m[1]) * UNIT_MS[m[2]] : null;
}

/** QUERY_MAX_BUCKETS' default: the most buckets one query may return. */
export const MAX_BUCKETS = 11_000;

/**
 * Whether a granularity (`auto`, `1s`, `5m`, …) fits a range (`1h`, `7d`, …): at most MAX_BUCKETS
 * buckets, counting the one a misaligned start adds, as the query API counts them. `auto` always
 * fits; the page offers 1 s next to 7 days, which the API refuses.
 */
export function granularityFits(granularity, range) {
  if (granularity === 'auto') return true;
  const g = durationMs(granularity),
    r = durationMs(range);
  return g !== null && r !== null && Math.ceil(r / g) + 1 <= MAX_BUCKETS;
}

/** The start of the bucket holding `ms`: buckets are aligned to the Unix epoch, as the query API aligns them. */
export function bucketStart(ms, granularityMs) {
  return Math.floor(ms / granularityMs) * granularityMs;
}

/** First index whose time is >= t (times sorted ascending). */
function lowerBound(times, t) {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A chart series built from a query answer: bucket start times (ms), values, and, for `avg`, the
 * number of points behind each bucket (from a `count` query of the same range), so that a live
 * point can be folded into a bucket exactly.
 */
export function seriesFromQuery(dataPoints, counts) {
  const times = [];
  const values = [];
  const n = [];
  const countAt = new Map((counts ?? []).map((p) => [Date.parse(p.timestamp), p.value]));
  for (const p of dataPoints) {
    if (p.value === null || p.value === undefined) continue;
    const t = Date.parse(p.timestamp);
    times.push(t);
    values.push(p.value);
    n.push(countAt.get(t) ?? 1);
  }
  return { times, values, counts: n };
}

/**
 * Folds one live point into the series as the query would have aggregated it: into its bucket if
 * the bucket is there, else as a new bucket in time order. Returns the index of the bucket.
 */
export function mergePoint(series, timeMs, value, aggregation, granularityMs) {
  const t = bucketStart(timeMs, granularityMs);
  const i = lowerBound(series.times, t);
  if (series.times[i] !== t) {
    series.times.splice(i, 0, t);
    series.values.splice(i, 0, aggregation === 'count' ? 1 : value);
    series.counts.splice(i, 0, 1);
    return i;
  }
  const old = series.values[i];
  const n = series.counts[i];
  switch (aggregation) {
    case 'avg':
      series.values[i] = (old * n + value) / (n + 1);
      break;
    case 'sum':
      series.values[i] = old + value;
      break;
    case 'min':
      series.values[i] = Math.min(old, value);
      break;
    case 'max':
      series.values[i] = Math.max(old, value);
      break;
    case 'count':
      series.values[i] = old + 1;
      break;
    case 'first':
      break; // a live point is newer than what the bucket already holds
    default: // last
      series.values[i] = value;
  }
  series.counts[i] = n + 1;
  return i;
}

/** Drops the buckets that have slid out of the window (those starting before `fromMs`). */
export function trimBefore(series, fromMs) {
  const i = lowerBound(series.times, fromMs);
  if (i > 0) {
    series.times.splice(0, i);
    series.values.splice(0, i);
    series.counts.splice(0, i);
  }
  return i;
}

/**
 * An incremental reader of a text/event-stream (the WHATWG format): feed it text as it arrives;
 * `onEvent({id, event, data})` is called for each complete event. Comments and `retry:` are ignored.
 * Returns `push(text)`.
 */
export function sseParser(onEvent) {
  let buffer = '';
  let data = [];
  let event = '';
  let id = null;
  const line = (l) => {
    if (l === '') {
      if (data.length > 0) onEvent({ id, event: event || 'message', data: data.join('\n') });
      data = [];
      event = '';
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon === -1 ? l : l.slice(0, colon);
    let value = colon === -1 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) id = value;
  };
  return (text) => {
    buffer += text;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) !== -1) {
      if (buffer[nl] === '\r' && nl === buffer.length - 1) break; // a CR at the end may be the first half of CRLF
      const eol = buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1;
      line(buffer.slice(0, nl));
      buffer = buffer.slice(nl + eol);
    }
  };
}
