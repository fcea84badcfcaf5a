import { invalidQuery, invalidRequest } from '../common/errors.js';
import { oneString } from '../common/input.js';
import {
  AGGREGATIONS,
  Aggregation,
  parseEnum,
  parseGranularity,
  parseRange,
  parseTags,
  QueryLimits,
  TagFilter,
  TimeRange,
} from '../query/query-spec.js';
import { ExportFormat, FORMATS } from './encoders.js';

/** What to export: one metric or several (or all), filters, a required range, optionally buckets. */
export interface ExportSpec extends TimeRange {
  format: ExportFormat;
  /** Null: every metric (the reference's /export/metrics without `metrics`). */
  metrics: string[] | null;
  source?: string;
  tags: TagFilter[];
  buckets?: { granularityMs: number; granularity: string; aggregation: Aggregation };
}

const MAX_METRICS = 100;

/**
 * Parameters of GET /metrics/export (query string) and POST /metrics/exports (JSON body): `format`,
 * `metric` (or `metrics`, a list or comma-separated), `source`, `tags`, `from` and `to` (required),
 * `granularity` + `aggregation`. Names may be given as the reference's first half spells them:
 * `start_date`, `end_date`.
 */
export function parseExportSpec(
  input: Record<string, unknown>,
  now: number,
  limits: QueryLimits,
  opts: { defaultFormat: ExportFormat; allowAllMetrics: boolean; rangeNames?: [string, string] },
): ExportSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalidRequest('Expected an object of export parameters');
  const from = input.from ?? input.start_date;
  const to = input.to ?? input.end_date;
  const [defaultFrom, defaultTo] = opts.rangeNames ?? ['from', 'to'];
  const fromName = input.from !== undefined ? 'from' : input.start_date !== undefined ? 'start_date' : defaultFrom;
  const toName = input.to !== undefined ? 'to' : input.end_date !== undefined ? 'end_date' : defaultTo;
  if (from === undefined || from === '')
    throw invalidQuery(
      fromName,
      `${fromName} is required for an export (ISO 8601 with a zone, epoch ms or now-<duration>)`,
    );
  if (to === undefined || to === '')
    throw invalidQuery(toName, `${toName} is required for an export (ISO 8601 with a zone, epoch ms or now)`);
  let range: TimeRange;
  try {
    range = parseRange({ from, to }, now);
  } catch (err) {
    // Name the parameter as the caller spelled it.
    const e = err as { details?: { parameter?: string } };
    if (e.details?.parameter === 'from' && fromName !== 'from') e.details.parameter = fromName;
    if (e.details?.parameter === 'to' && toName !== 'to') e.details.parameter = toName;
    throw err;
  }
  const format = parseEnum(input.format, FORMATS, 'format', opts.defaultFormat);
  let metrics: string[] | null;
  const one = oneString(input.metric, 'metric');
  if (one) metrics = [one];
  else if (input.metrics !== undefined && input.metrics !== '') {
    const list = (Array.isArray(input.metrics) ? input.metrics : [input.metrics]).flatMap((m) =>
      typeof m === 'string' ? m.split(',') : [m],
    );
    if (!list.every((m) => typeof m === 'string' && m.trim() !== ''))
      throw invalidQuery('metrics', 'metrics must be metric names, comma-separated or as a list');
    metrics = [...new Set((list as string[]).map((m) => m.trim()))];
    if (metrics.length > MAX_METRICS) throw invalidQuery('metrics', `at most ${MAX_METRICS} metrics per export`);
  } else if (opts.allowAllMetrics) metrics = null;
  else throw invalidQuery('metric', 'metric is required');
  if (input.metric !== undefined && !one) throw invalidQuery('metric', 'metric must be a string');
  const source = input.source === undefined || input.source === '' ? undefined : oneString(input.source, 'source');
  if (input.source !== undefined && input.source !== '' && source === undefined)
    throw invalidQuery('source', 'source must be a string');
  let buckets: ExportSpec['buckets'];
  if (input.granularity !== undefined && input.granularity !== '') {
    const g = parseGranularity(input.granularity, range, limits);
    buckets = {
      granularityMs: g.ms,
      granularity: g.label,
      aggregation: parseEnum(input.aggregation, AGGREGATIONS, 'aggregation', 'avg'),
    };
  } else if (input.aggregation !== undefined && input.aggregation !== '') {
    throw invalidQuery('aggregation', 'aggregation applies to buckets: give a granularity too (granularity=5m)');
  }
  return { ...range, format, metrics, source, tags: parseTags(input.tags), buckets };
}

/** `cpu_usage_export.csv` as in the reference; `metrics_export.csv` for several metrics. */
export function exportFileName(spec: Pick<ExportSpec, 'metrics'>, extension: string): string {
  const base = spec.metrics?.length === 1 ? spec.metrics[0].replace(/[^A-Za-z0-9_.:-]/g, '_') : 'metrics';
  return `${base}_export.${extension}`;
}
