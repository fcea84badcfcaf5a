// The live page: one metric over a range, its anomalies marked, and new points as they commit.
import uPlot from './uPlot.esm.js';
import { durationMs, granularityFits, mergePoint, seriesFromQuery, sseParser, trimBefore } from './live.js';

const KEY_ITEM = 'timescope.apiKey';
const ANOMALY_REFRESH_MS = 15_000;
const RECONNECT_MS = 3_000;
const $ = (id) => document.getElementById(id);
const el = {
  controls: $('controls'),
  metric: $('metric'),
  source: $('source'),
  range: $('range'),
  granularity: $('granularity'),
  aggregation: $('aggregation'),
  forgetKey: $('forget-key'),
  keyForm: $('key-form'),
  keyReason: $('key-reason'),
  key: $('key'),
  status: $('status'),
  chart: $('chart'),
  anomalies: $('anomalies'),
  anomalyCount: $('anomaly-count'),
};

/** The API answered 401: ask for a key, then start again. */
class NeedKey extends Error {}

const state = {
  plot: null,
  series: null, // {times, values, counts}
  pending: null, // live points held while the query runs
  anomalies: [],
  view: null, // {metric, source, range, aggregation, granularityMs, from}
  stream: null, // AbortController of the live stream
  anomalyTimer: null,
  live: false,
  generation: 0, // bumped by each load, so that a slow answer of an older one is dropped
};
// For debugging from the console (and for the page's test): read-only views of what is drawn.
window.timescopeLive = {
  get plot() {
    return state.plot;
  },
  get anomalies() {
    return state.anomalies;
  },
  /** Live points held while the chart's query runs (null once it has answered). */
  get pending() {
    return state.pending?.length ?? null;
  },
};

// ---- the API -------------------------------------------------------------------------------

function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const key = sessionStorage.getItem(KEY_ITEM);
  if (key) headers.set('authorization', `Bearer ${key}`);
  return headers;
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body?.error?.message) message = `${body.error.code}: ${body.error.message}`;
  } catch {
    // not the envelope: keep the status line
  }
  // No key or a refused one (401), or a key without the read scope (403): ask for another.
  if (res.status === 401 || (res.status === 403 && sessionStorage.getItem(KEY_ITEM) !== null))
    return new NeedKey(message);
  return new Error(message);
}

async function api(path, body) {
  const init = { headers: authHeaders({ accept: 'application/json' }), cache: 'no-store' };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers.set('content-type', 'application/json');
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await failure(res);
  return res.json();
}

const qs = (params) =>
  new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== '')).toString();

// ---- status, key prompt --------------------------------------------------------------------

function say(text, isError = false) {
  el.status.textContent = text;
  el.status.classList.toggle('error', isError);
}

function askForKey(reason) {
  const hadKey = sessionStorage.getItem(KEY_ITEM) !== null;
  sessionStorage.removeItem(KEY_ITEM);
  el.forgetKey.hidden = true;
  el.keyReason.textContent = hadKey
    ? `That key was refused (${reason}). Enter another API key with the read scope.`
    : 'This Timescope requires an API key with the read scope.';
  el.keyForm.hidden = false;
  el.key.value = '';
  el.key.focus();
  say('Waiting for an API key.');
}

function failed(err) {
  if (err instanceof NeedKey) askForKey(err.message);
  else if (err?.name !== 'AbortError') say(String(err?.message ?? err), true);
}

el.keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const key = el.key.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_ITEM, key);
  el.key.value = '';
  el.keyForm.hidden = true;
  el.forgetKey.hidden = false;
  start();
});

el.forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KEY_ITEM);
  stopStream();
  location.reload();
});

// ---- the choice (kept in the URL's fragment, which never reaches the server) ----------------

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const name of ['range', 'granularity', 'aggregation']) {
    const v = p.get(name);
    if (v && [...el[name].options].some((o) => o.value === v)) el[name].value = v;
  }
  return { metric: p.get('metric') ?? '', source: p.get('source') ?? '' };
}

function writeHash() {
  const p = qs({
    metric: el.metric.value,
    source: el.source.value,
    range: el.range.value,
    granularity: el.granularity.value,
    aggregation: el.aggregation.value,
  });
  history.replaceState(null, '', `#${p}`);
}

/** Granularities too fine for the range are offered greyed out; one chosen before falls back to auto. */
function fitGranularity() {
  for (const o of el.granularity.options) o.disabled = !granularityFits(o.value, el.range.value);
  if (el.granularity.selectedOptions[0]?.disabled) el.granularity.value = 'auto';
}

function fillSelect(select, items, first) {
  const keep = select.value;
  select.replaceChildren(...(first ? [new Option(first, '')] : []), ...items.map(([v, label]) => new Option(label, v)));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

// ---- loading -------------------------------------------------------------------------------

async function start() {
  const wanted = readHash();
  fitGranularity();
  try {
    say('Loading metrics…');
    const names = await api('api/v1/metrics/names');
    el.forgetKey.hidden = sessionStorage.getItem(KEY_ITEM) === null;
    const metrics = names.metrics.map((m) => [m.name, m.unit ? `${m.name} (${m.unit})` : m.name]);
    fillSelect(el.metric, metrics, metrics.length ? 'choose a metric…' : 'no metrics yet');
    if (wanted.metric && metrics.some(([n]) => n === wanted.metric)) el.metric.value = wanted.metric;
    if (!el.metric.value) {
      say(metrics.length ? `${metrics.length} metrics: choose one.` : 'No metrics stored yet.');
      return;
    }
    await loadSources(wanted.source);
    await load();
  } catch (err) {
    failed(err);
  }
}

async function loadSources(wanted = el.source.value) {
  const { sources } = await api(`api/v1/metrics/sources?${qs({ metric: el.metric.value })}`);
  fillSelect(
    el.source,
    sources.map((s) => [s.name, s.name]),
    'all sources',
  );
  el.source.value = sources.some((s) => s.name === wanted) ? wanted : '';
}

async function load() {
  const generation = ++state.generation;
  stopStream();
  writeHash();
  const metric = el.metric.value;
  if (!metric) return;
  const source = el.source.value;
  const range = el.range.value;
  const aggregation = el.aggregation.value;
  say(`Loading ${metric}…`);
  // The stream opens first and holds what arrives until the query has answered, so that no point
  // committed in between is lost (see fold below for which of those the query already holds).
  state.pending = [];
  follow(generation, metric, source);
  let data;
  let counts;
  try {
    // One request: the chart's query and, for avg, the count of points per bucket, which lets a
    // live point be averaged in exactly (the same range and granularity: they are shared).
    const query = { metric, ...(source ? { source } : {}), aggregation };
    const queries = aggregation === 'avg' ? [query, { ...query, aggregation: 'count' }] : [query];
    const multi = await api('api/v1/metrics/query/multi', {
      queries,
      from: `now-${range}`,
      to: 'now',
      granularity: el.granularity.value,
    });
    const refused = multi.results.find((r) => r.error);
    if (refused) throw new Error(`${refused.error.code}: ${refused.error.message}`);
    data = { ...multi.results[0], from: multi.from, to: multi.to };
    counts = multi.results[1] ?? null;
  } catch (err) {
    if (generation === state.generation) stopStream();
    throw err;
  }
  if (generation !== state.generation) return;
  const granularityMs = durationMs(data.granularity);
  state.view = { metric, source, range, aggregation, granularity: data.granularity, granularityMs };
  state.series = seriesFromQuery(data.data_points, counts?.data_points);
  state.anomalies = [];
  // Points that arrived while the query ran: those stamped at or after its end are not in it; those
  // before it almost always are (committed before the query read), so they are not counted twice.
  const end = Date.parse(data.to);
  const held = state.pending;
  state.pending = null;
  for (const p of held) if (Date.parse(p.timestamp) >= end) fold(p);
  trimBefore(state.series, Date.now() - durationMs(range));
  draw();
  renderAnomalies();
  say(`${state.series.times.length} points of ${metric}, ${aggregation} per ${data.granularity}.`);
  await detect(generation, data.from, data.to);
}

/** Anomalies of the same buckets the chart shows, so that each marker sits on the line. */
async function detect(generation, from, to) {
  const v = state.view;
  try {
    const res = await api('api/v1/metrics/anomalies', {
      metric: v.metric,
      ...(v.source ? { source: v.source } : {}),
      from,
      to,
      granularity: v.granularity,
      aggregation: v.aggregation,
    });
    if (generation !== state.generation) return;
    state.anomalies = res.anomalies;
    renderAnomalies();
    state.plot?.redraw(false);
  } catch (err) {
    if (generation !== state.generation) return;
    if (err instanceof NeedKey) return failed(err);
    el.anomalyCount.textContent = `(not analysed: ${err.message})`;
  }
}

function scheduleDetect(generation) {
  if (state.anomalyTimer) return;
  state.anomalyTimer = setTimeout(() => {
    state.anomalyTimer = null;
    const to = new Date().toISOString();
    const from = new Date(Date.now() - durationMs(state.view.range)).toISOString();
    detect(generation, from, to);
  }, ANOMALY_REFRESH_MS);
}

// ---- the chart -----------------------------------------------------------------------------

function markAnomalies(u) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (const a of state.anomalies) {
    const t = Date.parse(a.timestamp) / 1000;
    const x = u.valToPos(t, 'x', true);
    const end = a.episode?.end ? u.valToPos(Date.parse(a.episode.end) / 1000, 'x', true) : x;
    ctx.fillStyle = 'rgba(214, 40, 40, 0.12)';
    ctx.fillRect(Math.min(x, end) - 2, top, Math.abs(end - x) + 4, height);
  }
  for (const a of state.anomalies) {
    const x = u.valToPos(Date.parse(a.timestamp) / 1000, 'x', true);
    const y = u.valToPos(a.value, 'y', true);
    ctx.beginPath();
    ctx.arc(x, y, 6 * uPlot.pxRatio, 0, 2 * Math.PI);
    ctx.fillStyle = '#d62828';
    ctx.fill();
    ctx.lineWidth = 2 * uPlot.pxRatio;
    ctx.strokeStyle = '#ffffff';
    ctx.stroke();
  }
  ctx.restore();
}

function chartData() {
  return [state.series.times.map((t) => t / 1000), state.series.values];
}

function size() {
  return { width: Math.max(320, el.chart.clientWidth - 2), height: 360 };
}

function draw() {
  state.plot?.destroy();
  const { metric, aggregation, granularity } = state.view;
  state.plot = new uPlot(
    {
      ...size(),
      scales: { x: { time: true } },
      series: [
        {},
        {
          label: `${metric} (${aggregation} per ${granularity})`,
          stroke: '#2b6cb0',
          width: 2,
          fill: 'rgba(43, 108, 176, 0.08)',
          points: { show: (u) => u.data[0].length <= 200 },
        },
      ],
      hooks: { draw: [markAnomalies] },
    },
    chartData(),
    el.chart,
  );
  publish();
}

let redrawPending = false;
function redraw() {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => {
    redrawPending = false;
    state.plot?.setData(chartData());
    publish();
  });
}

/** What is drawn, as attributes of the chart's element (for scripts and tests). */
function publish() {
  el.chart.dataset.points = String(state.series?.times.length ?? 0);
  el.chart.dataset.anomalies = String(state.anomalies.length);
  el.chart.dataset.live = state.live ? 'on' : 'off';
}

function renderAnomalies() {
  el.anomalyCount.textContent = `(${state.anomalies.length})`;
  el.anomalies.replaceChildren(
    ...state.anomalies.map((a) => {
      const li = document.createElement('li');
      li.className = `severity-${a.severity}`;
      const where = a.source ? ` on ${a.source}` : '';
      const expected = a.context?.expected ?? a.context?.baseline_avg;
      li.textContent = `${new Date(a.timestamp).toLocaleString()}: ${a.value}${where} (${a.severity}, score ${Number(a.score).toFixed(2)}${expected !== undefined && expected !== null ? `, expected about ${Number(expected).toPrecision(4)}` : ''})`;
      li.dataset.timestamp = a.timestamp;
      return li;
    }),
  );
  publish();
}

window.addEventListener('resize', () => state.plot?.setSize(size()));

// ---- live points ---------------------------------------------------------------------------

function stopStream() {
  state.stream?.abort();
  state.stream = null;
  clearTimeout(state.anomalyTimer);
  state.anomalyTimer = null;
  setLive(false);
}

function setLive(on) {
  state.live = on;
  publish();
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * Server-Sent Events read with fetch rather than EventSource: the key goes in the Authorization
 * header (never in a URL, where proxies log it), a 401 can be told from a network error, and after
 * a disconnect the stream resumes from the last event id (Last-Event-ID).
 */
async function follow(generation, metric, source) {
  const controller = new AbortController();
  state.stream = controller;
  const { signal } = controller;
  // Sources are any text: a comma would split the stream's list, so such a source is filtered here only.
  const sources = source && !source.includes(',') ? source : undefined;
  const url = `api/v1/metrics/stream?${qs({ metrics: metric, sources })}`;
  let lastId = null;
  while (!signal.aborted) {
    try {
      const headers = authHeaders({ accept: 'text/event-stream' });
      if (lastId) headers.set('last-event-id', lastId);
      const res = await fetch(url, { headers, signal, cache: 'no-store' });
      if (!res.ok) throw await failure(res);
      setLive(true);
      const push = sseParser((ev) => {
        if (ev.id) lastId = ev.id;
        onEvent(ev, generation, metric, source);
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        push(value);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof NeedKey) {
        stopStream();
        return failed(err);
      }
    }
    setLive(false);
    await sleep(RECONNECT_MS, signal);
  }
}

const MAX_PENDING = 100_000;

function onEvent(ev, generation, metric, source) {
  if (generation !== state.generation) return;
  if (ev.event === 'gap' || ev.event === 'skipped') {
    load().catch(failed); // points were missed: read the range again
    return;
  }
  if (ev.event !== 'message') return;
  let p;
  try {
    p = JSON.parse(ev.data);
  } catch {
    return;
  }
  if (p.metric !== metric || (source && p.source !== source) || typeof p.value !== 'number') return;
  if (state.pending) {
    if (state.pending.length < MAX_PENDING) state.pending.push(p);
    return;
  }
  fold(p);
  trimBefore(state.series, Date.now() - durationMs(state.view.range));
  redraw();
  const v = state.view;
  say(
    `${state.series.times.length} points of ${v.metric}, ${v.aggregation} per ${v.granularity}; last ${p.value} at ${new Date(p.timestamp).toLocaleTimeString()}.`,
  );
  scheduleDetect(generation);
}

/** One live point into the chart's buckets. */
function fold(p) {
  const v = state.view;
  mergePoint(state.series, Date.parse(p.timestamp), p.value, v.aggregation, v.granularityMs);
}

// ---- wiring --------------------------------------------------------------------------------

el.metric.addEventListener('change', () => {
  el.source.value = '';
  loadSources('').then(load).catch(failed);
});
el.range.addEventListener('change', fitGranularity); // before load(), registered first
for (const name of ['source', 'range', 'granularity', 'aggregation'])
  el[name].addEventListener('change', () => load().catch(failed));
el.controls.addEventListener('submit', (e) => e.preventDefault());

start();
