import { z } from 'zod';
import { named } from '../registry.js';
import { Aggregation, ErrorBody, Fill, QueryTime, SeriesRange } from './common.js';

export const DataPoint = named(
  'DataPoint',
  z.object({ timestamp: z.string().meta({ example: '2024-01-15T10:00:00.000Z' }), value: z.number().nullable() }),
);

/** One group of a grouped (`group_by`) or multi-metric query. */
export const QueryGroup = named(
  'QueryGroup',
  z.looseObject({
    source: z.string().nullable().optional(),
    tags: z.record(z.string(), z.string()),
    data_points: z.array(DataPoint),
    total_points: z.number().int(),
    series_count: z.number().int(),
  }),
);

const seriesFields = {
  metric: z.string(),
  source: z.string().nullable(),
  tags: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  granularity: z.string().meta({ example: '5m' }),
  aggregation: z.string(),
  fill: z.string(),
  data_points: z.array(DataPoint),
  total_points: z.number().int(),
  series_count: z.number().int(),
  rollup: z
    .string()
    .nullable()
    .meta({ description: 'the rollup tier that served the whole buckets; null: raw points' }),
  groups: z
    .array(QueryGroup)
    .optional()
    .meta({ description: 'with group_by, or several metrics/sources: one entry per group' }),
};

export const SeriesResult = named('SeriesResult', z.looseObject(seriesFields));

export const QueryResult = named(
  'QueryResult',
  z.looseObject({ ...seriesFields, from: z.string(), to: z.string(), query_time_ms: z.number() }),
);

export const MultiQueryItem = named(
  'MultiQueryItem',
  z.object({
    ...SeriesRange,
    granularity: z.string().optional(),
    aggregation: Aggregation.optional(),
    fill: Fill.optional(),
    group_by: z.string().optional().meta({ description: 'source or tag keys, comma-separated' }),
  }),
);

export const MultiQueryBody = named(
  'MultiQueryBody',
  z.object({
    queries: z.array(MultiQueryItem).min(1).max(20),
    from: QueryTime.optional(),
    to: QueryTime.optional(),
    granularity: z.string().optional().meta({ example: '5m' }),
    aggregation: Aggregation.optional(),
    fill: Fill.optional(),
    group_by: z.string().optional().meta({ description: 'source or tag keys, comma-separated' }),
  }),
);

export const MultiQueryResult = named(
  'MultiQueryResult',
  z.looseObject({
    results: z.array(z.looseObject({ ...seriesFields, error: ErrorBody.optional() })),
    from: z.string(),
    to: z.string(),
    query_time_ms: z.number(),
  }),
);

export const MetricNames = named(
  'MetricNames',
  z.object({
    metrics: z.array(
      z.object({
        name: z.string(),
        unit: z.string().nullable(),
        units: z.array(z.string()),
        series_count: z.number().int(),
        sources_count: z.number().int(),
        last_seen: z.string().nullable(),
      }),
    ),
    total: z.number().int(),
    truncated: z.boolean().meta({ description: 'more names matched than the 10,000 listed: narrow with search' }),
  }),
);

export const SourceNames = named(
  'SourceNames',
  z.looseObject({
    sources: z.array(
      z.object({
        name: z.string(),
        series_count: z.number().int(),
        metrics_count: z.number().int(),
        last_seen: z.string().nullable(),
      }),
    ),
    total: z.number().int(),
    truncated: z.boolean().meta({ description: 'more sources matched than the 10,000 listed: narrow with metric' }),
  }),
);

export const TagCatalogue = named(
  'TagCatalogue',
  z.looseObject({
    metric: z.string(),
    source: z.string().nullable(),
    tags: z.record(z.string(), z.array(z.string())),
    truncated: z.array(z.string()),
  }),
);
