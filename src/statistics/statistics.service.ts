import { Injectable } from '@nestjs/common';
import { toIsoMicros } from '../common/time.js';
import { parseRange, parseSelector, QueryInput } from '../query/query-spec.js';
import { QueryService } from '../query/query.service.js';
import { parsePercentiles, percentileKey } from './percentiles.js';
import { StatisticsRepository } from './statistics.repository.js';

export interface SummaryInput extends QueryInput {
  percentiles?: unknown;
}

/** GET /metrics/summary: exact statistics of the stored points of the matching series. */
@Injectable()
export class StatisticsService {
  constructor(
    private readonly queries: QueryService,
    private readonly repo: StatisticsRepository,
  ) {}

  async summary(input: SummaryInput) {
    const t0 = performance.now();
    const selector = parseSelector(input);
    const range = parseRange(input, Date.now());
    const percentiles = parsePercentiles(input.percentiles);
    const ids = await this.queries.matchingSeries(selector);
    const row =
      ids.length && range.from < range.to
        ? await this.repo.summary(ids, range.from, range.to, [0.5, ...percentiles.map((p) => p / 100)])
        : { count: 0, min: null, max: null, avg: null, std_dev: null, quantiles: null };
    const q = row.quantiles ?? [];
    return {
      metric: selector.metric,
      source: selector.source ?? null,
      tags: Object.fromEntries(selector.tags.map((t) => [t.key, t.values.length === 1 ? t.values[0] : t.values])),
      time_range: { from: toIsoMicros(range.from), to: toIsoMicros(range.to) },
      statistics: {
        count: row.count,
        min: row.min,
        max: row.max,
        avg: row.avg,
        median: q[0] ?? null,
        // Sample standard deviation (n - 1); null below two points, where it is undefined.
        std_dev: row.std_dev,
        percentiles: Object.fromEntries(percentiles.map((p, i) => [percentileKey(p), q[i + 1] ?? null])),
      },
      series_count: ids.length,
      query_time_ms: Math.round((performance.now() - t0) * 100) / 100,
    };
  }
}
