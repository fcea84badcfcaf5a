import type { TagFilter } from '../../query/query-spec.js';
import type { StageJson } from '../definition.js';
import { allowOnly, isCleanText, Json, METRIC_NAME, StageContext, stringList, tagFilters } from './common.js';

/** Which series a pipeline reads; `metrics` null: those later stages name, or every metric. */
export interface SeriesFilter {
  metrics: string[] | null;
  sources: string[];
  tags: TagFilter[];
}

/** `filter`: metrics, sources, tags, as the query API selects series. At most one, before the aggregate. */
export function parseFilter(params: Json, s: StageContext): { filter: SeriesFilter; stage: StageJson } {
  allowOnly(s, params, 'filter', 'metrics', 'metric', 'sources', 'source', 'tags');
  const at = `pipeline[${s.index}].operation`;
  if (s.seen.filter) s.problems.add(at, 'only one filter stage is allowed; put every condition in it');
  if (s.seen.aggregate) s.problems.add(at, 'a filter selects series and must come before the aggregate stage');
  const max = s.limits.maxNameLength;
  const metrics = stringList(
    params,
    ['metrics', 'metric'],
    s,
    (v) => METRIC_NAME.test(v) && v.length <= max,
    'metric names',
  );
  const sources = stringList(
    params,
    ['sources', 'source'],
    s,
    (v) => v.length > 0 && v.length <= max && isCleanText(v),
    'sources',
  );
  const tags = tagFilters(params.tags, `${s.field}.tags`, s.problems);
  const normal: Json = {};
  if (metrics?.length) normal.metrics = metrics;
  if (sources?.length) normal.sources = sources;
  if (tags.length)
    normal.tags = Object.fromEntries(tags.map((t) => [t.key, t.values.length === 1 ? t.values[0] : t.values]));
  return {
    filter: { metrics: metrics && metrics.length > 0 ? metrics : null, sources: sources ?? [], tags },
    stage: { operation: 'filter', params: normal },
  };
}
