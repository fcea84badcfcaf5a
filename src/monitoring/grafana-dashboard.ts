/**
 * GET /api/v1/monitoring/metrics/grafana: a Grafana dashboard of Timescope's own metrics through a
 * Prometheus datasource that scrapes /prometheus-metrics. Built like the provisioned
 * grafana/dashboards/timescope-overview.json (schemaVersion 39, timeseries panels, 1 h range,
 * 30 s refresh, uid prefix timescope-); the reference's `{dashboard: {title, panels: [{title, type,
 * datasource, query}]}}` with what Grafana itself reads (`targets[].expr`) beside each `query`.
 * Pure: the test checks every expression against the registry and runs them in a real Prometheus.
 */

interface PanelSpec {
  title: string;
  unit: string;
  exprs: Array<[expr: string, legend: string]>;
  description?: string;
  stack?: boolean;
}

const PANELS: PanelSpec[] = [
  {
    title: 'Request rate by route',
    unit: 'reqps',
    exprs: [['sum by (route) (rate(timescope_http_request_duration_seconds_count[5m]))', '{{route}}']],
  },
  {
    title: 'Request latency',
    unit: 's',
    exprs: [
      ['histogram_quantile(0.5, sum by (le) (rate(timescope_http_request_duration_seconds_bucket[5m])))', 'p50'],
      ['histogram_quantile(0.95, sum by (le) (rate(timescope_http_request_duration_seconds_bucket[5m])))', 'p95'],
      ['histogram_quantile(0.99, sum by (le) (rate(timescope_http_request_duration_seconds_bucket[5m])))', 'p99'],
    ],
  },
  {
    title: 'Errors by status and code',
    unit: 'reqps',
    exprs: [['sum by (status, code) (rate(timescope_http_errors_total[5m]))', '{{status}} {{code}}']],
  },
  {
    title: 'Query latency (p95) by route',
    unit: 's',
    exprs: [
      ['histogram_quantile(0.95, sum by (le, route) (rate(timescope_query_duration_seconds_bucket[5m])))', '{{route}}'],
    ],
  },
  {
    title: 'Points ingested per second',
    unit: 'short',
    exprs: [
      ['sum by (protocol) (rate(timescope_ingest_points_committed_total[5m]))', 'committed {{protocol}}'],
      ['sum by (reason) (rate(timescope_ingest_points_rejected_total[5m]))', 'rejected {{reason}}'],
    ],
  },
  {
    title: 'Ingest queue',
    unit: 'short',
    exprs: [
      ['timescope_ingest_queue_points', 'pending points {{instance}}'],
      ['timescope_ingest_queue_capacity_points', 'capacity {{instance}}'],
    ],
  },
  {
    title: 'Write transaction latency',
    unit: 's',
    exprs: [
      ['histogram_quantile(0.5, sum by (le) (rate(timescope_writer_transaction_duration_seconds_bucket[5m])))', 'p50'],
      ['histogram_quantile(0.99, sum by (le) (rate(timescope_writer_transaction_duration_seconds_bucket[5m])))', 'p99'],
    ],
  },
  {
    title: 'Live streams',
    unit: 'short',
    exprs: [
      ['sum by (kind) (timescope_stream_connections)', 'open {{kind}}'],
      ['sum(increase(timescope_stream_clients_cut_off_total[5m]))', 'cut off (5 min)'],
    ],
  },
  {
    title: 'Job runs',
    unit: 'short',
    exprs: [['sum by (job, outcome) (increase(timescope_job_runs_total[15m]))', '{{job}} {{outcome}}']],
  },
  {
    title: 'Webhook deliveries',
    unit: 'short',
    exprs: [
      ['sum by (outcome) (increase(timescope_webhook_deliveries_total[15m]))', '{{outcome}}'],
      ['sum(increase(timescope_webhook_retries_total[15m]))', 'retries'],
    ],
  },
  {
    title: 'Refused: rate limits and authentication',
    unit: 'reqps',
    exprs: [
      ['sum by (class) (rate(timescope_rate_limited_requests_total[5m]))', '429 {{class}}'],
      ['sum by (reason) (rate(timescope_auth_failures_total[5m]))', 'auth {{reason}}'],
    ],
  },
  {
    title: 'Database pool',
    unit: 'short',
    exprs: [
      ['sum by (pool, state) (timescope_db_pool_connections)', '{{pool}} {{state}}'],
      ['sum by (pool) (timescope_db_pool_waiting_requests)', '{{pool}} waiting'],
    ],
  },
  {
    title: 'Process CPU and memory',
    unit: 'short',
    exprs: [
      ['rate(process_cpu_seconds_total{job=~"$job"}[5m])', 'CPU cores {{instance}}'],
      ['process_resident_memory_bytes{job=~"$job"} / 2^30', 'RSS GiB {{instance}}'],
    ],
  },
  {
    title: 'Event loop lag (p99)',
    unit: 's',
    exprs: [['nodejs_eventloop_lag_p99_seconds{job=~"$job"}', '{{instance}}']],
  },
];

/** Every Prometheus expression of the dashboard (for tests). */
export function dashboardExpressions(): string[] {
  return PANELS.flatMap((p) => p.exprs.map(([e]) => withJob(e).replaceAll('$job', '.+')));
}

/**
 * The dashboard. `datasourceUid`: the Prometheus datasource's uid; by default `${DS_PROMETHEUS}`,
 * which Grafana's import asks for (the `__inputs` entry); give a uid to POST it to /api/dashboards/db.
 */
export function grafanaDashboard(datasourceUid = '${DS_PROMETHEUS}') {
  const datasource = { type: 'prometheus', uid: datasourceUid };
  const panels = PANELS.map((p, i) => ({
    id: i + 1,
    title: p.title,
    type: 'timeseries',
    datasource,
    // The reference's field; Grafana reads targets.
    query: withJob(p.exprs[0][0]),
    gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
    fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
    options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
    targets: p.exprs.map(([expr, legendFormat], k) => ({
      refId: String.fromCharCode(65 + k),
      datasource,
      expr: withJob(expr),
      legendFormat,
    })),
  }));
  return {
    ...(datasourceUid === '${DS_PROMETHEUS}'
      ? {
          __inputs: [
            {
              name: 'DS_PROMETHEUS',
              label: 'Prometheus',
              description: 'The Prometheus that scrapes Timescope',
              type: 'datasource',
              pluginId: 'prometheus',
              pluginName: 'Prometheus',
            },
          ],
        }
      : {}),
    uid: 'timescope-self',
    title: 'Timescope self-metrics',
    tags: ['timescope'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        {
          name: 'job',
          label: 'Prometheus job',
          type: 'query',
          datasource,
          query: { query: 'label_values(timescope_build_info, job)', refId: 'job' },
          definition: 'label_values(timescope_build_info, job)',
          refresh: 1,
          multi: false,
          includeAll: true,
          allValue: '.+',
        },
      ],
    },
    annotations: { list: [] },
    panels,
  };
}

/**
 * Every series is filtered by the scrape's `job` label (a dashboard variable): `timescope_x` becomes
 * `timescope_x{job=~"$job"}` where an expression does not select its own.
 */
function withJob(expr: string): string {
  return expr.includes('{job=~') ? expr : expr.replace(/\b(timescope_[a-z_]+)\b(?!\{)/g, '$1{job=~"$job"}');
}
