import { z } from 'zod';
import { named } from '../registry.js';
import { Aggregation, QueryTime, SeriesRange, TagFilter } from './common.js';

export const SummaryResult = named(
  'SummaryResult',
  z.looseObject({
    metric: z.string(),
    source: z.string().nullable(),
    tags: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
    time_range: z.object({ from: z.string(), to: z.string() }),
    statistics: z.looseObject({
      count: z.number().int(),
      min: z.number().nullable(),
      max: z.number().nullable(),
      avg: z.number().nullable(),
      median: z.number().nullable(),
      std_dev: z.number().nullable(),
      percentiles: z.record(z.string(), z.number().nullable()).meta({ example: { p50: 46.8, p99: 66.8 } }),
    }),
    series_count: z.number().int(),
    query_time_ms: z.number(),
  }),
);

export const AnomalyRequest = named(
  'AnomalyRequest',
  z.object({
    ...SeriesRange,
    algorithm: z.enum(['auto', 'isolation_forest', 'zscore', 'mad', 'seasonal']).optional(),
    sensitivity: z.number().gt(0).lte(1).optional().meta({ description: 'higher finds more (default 0.5)' }),
    granularity: z.string().optional(),
    aggregation: Aggregation.optional(),
    direction: z.enum(['both', 'above', 'below']).optional(),
    min_deviation: z
      .union([z.number(), z.string()])
      .nullable()
      .optional()
      .meta({ description: "in the metric's unit, or a percentage of the expected value", example: '10%' }),
    window: z.string().optional().meta({ example: '6h' }),
    seed: z.number().int().optional(),
    trees: z.number().int().optional(),
    subsample: z.number().int().optional(),
  }),
);

export const Anomaly = named(
  'Anomaly',
  z.looseObject({
    timestamp: z.string(),
    value: z.number(),
    score: z.number(),
    severity: z.string(),
    context: z.record(z.string(), z.unknown()),
    episode: z.record(z.string(), z.unknown()).optional(),
    source: z.string().nullable().optional(),
    tags: z.record(z.string(), z.string()).optional(),
  }),
);

export const AnomalyResult = named(
  'AnomalyResult',
  z.looseObject({
    anomalies: z.array(Anomaly),
    total_anomalies: z.number().int(),
    points_analyzed: z.number().int(),
    series_analyzed: z.number().int(),
    analysis_time_ms: z.number(),
    parameters: z.record(z.string(), z.unknown()),
  }),
);

export const ExportFormat = named('ExportFormat', z.enum(['csv', 'json', 'ndjson', 'parquet']));

export const ExportRequest = named(
  'ExportRequest',
  z.object({
    format: ExportFormat.optional(),
    metric: z.string().optional(),
    metrics: z
      .union([z.array(z.string()), z.string()])
      .optional()
      .meta({ description: 'several metrics' }),
    source: z.string().optional(),
    tags: TagFilter.optional(),
    from: QueryTime.optional(),
    to: QueryTime.optional(),
    start_date: QueryTime.optional().meta({ description: 'as from' }),
    end_date: QueryTime.optional().meta({ description: 'as to' }),
    granularity: z.string().optional(),
    aggregation: Aggregation.optional(),
  }),
);

export const ExportStatus = named(
  'ExportStatus',
  z.object({
    export_id: z.string().meta({ example: 'exp_20250616_103000_1a2b3c4d' }),
    status: z.enum(['pending', 'running', 'completed', 'failed']),
    format: z.string(),
    download_url: z.string().nullable(),
    status_url: z.string(),
    file_name: z.string().nullable(),
    file_size_bytes: z.number().nullable(),
    records_count: z.number().nullable(),
    progress: z.object({ percent: z.number(), records_written: z.number().nullable() }),
    created_at: z.string(),
    started_at: z.string().nullable(),
    generated_at: z.string().nullable(),
    expires_at: z.string().nullable(),
    error: z.string().nullable(),
  }),
);

export const ExportList = named('ExportList', z.object({ exports: z.array(ExportStatus), total: z.number().int() }));
