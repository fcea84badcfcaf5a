import { z } from 'zod';
import { named } from '../registry.js';
import { Tags, Timestamp } from './common.js';

/**
 * Ingest bodies. These document the JSON ingest routes; they are not what validates them: the
 * hand-written decoder (src/ingestion/decode.ts) stays on the hot path, being several times
 * faster than these schemas with the same messages (see bench/validators.ts and the README).
 */

export const MetricPoint = named(
  'MetricPoint',
  z.object({
    name: z.string().min(1).max(200).meta({ example: 'cpu_usage' }),
    value: z.number().meta({ example: 45.2 }),
    unit: z.string().max(64).optional().meta({ example: 'percent' }),
    tags: Tags.optional(),
    timestamp: Timestamp.optional(),
  }),
);

export const MetricsSubmission = named(
  'MetricsSubmission',
  z
    .object({
      source: z.string().min(1).max(200).meta({ example: 'fl_server' }),
      timestamp: Timestamp.optional().meta({ description: 'Default time of the points that have none' }),
      metrics: z.array(MetricPoint).min(1),
    })
    .meta({ description: 'The reference submission (collector-api.md)' }),
);

export const ServiceMetric = named(
  'ServiceMetric',
  z
    .object({
      service: z.string().min(1).max(200).meta({ example: 'api' }),
      metric_type: z.string().min(1).max(200).meta({ example: 'cpu' }),
      value: z.number().meta({ example: 45.2 }),
      unit: z.string().optional(),
      tags: Tags.optional(),
      timestamp: Timestamp.optional(),
    })
    .meta({ description: 'The system-monitor shape: one value of a service (the service is the source)' }),
);

export const SubmitBody = named('SubmitBody', z.union([MetricsSubmission, ServiceMetric]));

export const BatchesBody = named(
  'BatchesBody',
  z.object({ batches: z.array(z.union([MetricsSubmission, ServiceMetric])).min(1) }),
);

export const AppMetric = named(
  'AppMetric',
  z.object({
    name: z.string(),
    value: z.number(),
    timestamp: z.number().optional().meta({ description: 'epoch milliseconds' }),
    tags: Tags.optional(),
    profileId: z.string().optional().meta({ description: 'becomes the tag profileId' }),
    unit: z.string().optional(),
  }),
);

export const AppMetricsBody = named('AppMetricsBody', z.object({ metrics: z.array(AppMetric) }));

export const IngestReply = named(
  'IngestReply',
  z.object({
    status: z.literal('success'),
    metrics_accepted: z.number().int(),
    timestamp: z.string(),
    batch_id: z.string(),
  }),
);

/** OTLP/HTTP JSON (ExportMetricsServiceRequest): its protobuf's JSON mapping, not listed field by field here. */
export const OtlpRequest = named(
  'OtlpExportMetricsServiceRequest',
  z.looseObject({ resourceMetrics: z.array(z.looseObject({})).optional() }),
);
export const OtlpResponse = named(
  'OtlpExportMetricsServiceResponse',
  z.looseObject({
    partialSuccess: z
      .looseObject({
        rejectedDataPoints: z.union([z.string(), z.number()]).optional(),
        errorMessage: z.string().optional(),
      })
      .optional(),
  }),
);
