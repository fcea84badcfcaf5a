import { z } from 'zod';
import { named } from '../registry.js';
import { JsonObject, Tags, Timestamp } from './common.js';

/** Events, logs, services, pipeline status, alerts, alert rules, pipelines, webhooks. */

const Level = z.string().meta({ description: 'debug, info, warn, error, critical (warning, fatal, … read as these)' });

export const EventInput = named(
  'EventInput',
  z.object({
    kind: z.string().meta({ example: 'deploy' }),
    source: z.string().optional(),
    level: Level.optional(),
    message: z.string().optional(),
    attributes: JsonObject.optional(),
    timestamp: Timestamp.optional(),
  }),
);
export const EventsBody = named(
  'EventsBody',
  z.union([EventInput, z.object({ events: z.array(EventInput).min(1).max(1000) })]),
);

export const Event = named(
  'Event',
  z.looseObject({
    id: z.number().int(),
    timestamp: z.string(),
    kind: z.string(),
    source: z.string().nullable(),
    level: z.string(),
    message: z.string().nullable(),
    attributes: JsonObject,
  }),
);
export const EventsAccepted = named(
  'EventsAccepted',
  z.object({ status: z.literal('success'), events_accepted: z.number().int(), events: z.array(Event) }),
);
export const EventList = named(
  'EventList',
  z.object({ events: z.array(Event), total: z.number().int(), next_cursor: z.string().nullable() }),
);

export const PolicyEventInput = named(
  'PolicyEventInput',
  z.object({
    policy_id: z.string().meta({ example: 'network_quality' }),
    event_type: z.string().meta({ example: 'policy_violation' }),
    target: z.string().optional(),
    result: z.string().optional(),
    details: JsonObject.optional(),
    timestamp: Timestamp.optional(),
  }),
);
export const PolicyEventsBody = named(
  'PolicyEventsBody',
  z.union([PolicyEventInput, z.object({ events: z.array(PolicyEventInput).min(1).max(1000) })]),
);
export const PolicyEventList = named(
  'PolicyEventList',
  z.looseObject({
    events: z.array(
      z.looseObject({
        id: z.number().int(),
        timestamp: z.string(),
        policy_id: z.string().nullable(),
        event_type: z.string().nullable(),
        target: z.string().nullable(),
        result: z.string().nullable(),
      }),
    ),
    total: z.number().int(),
    since: z.string().nullable(),
    next_cursor: z.string().nullable(),
  }),
);

export const LogInput = named(
  'LogInput',
  z.object({
    level: Level,
    service: z.string(),
    message: z.string(),
    metadata: JsonObject.optional(),
    timestamp: Timestamp.optional(),
  }),
);
export const LogsBody = named('LogsBody', z.union([LogInput, z.object({ logs: z.array(LogInput).min(1).max(1000) })]));
export const LogList = named(
  'LogList',
  z.looseObject({
    logs: z.array(
      z.looseObject({
        timestamp: z.string(),
        level: z.string(),
        service: z.string().nullable(),
        message: z.string().nullable(),
        metadata: JsonObject,
      }),
    ),
    total: z.number().int(),
    query: JsonObject,
  }),
);

export const PipelineStatusReport = named(
  'PipelineStatusReport',
  z.object({
    pipeline_type: z.string().meta({ example: 'training' }),
    status: z.string().meta({ description: 'pending, running, completed, failed, cancelled', example: 'running' }),
    pipeline_id: z.string().optional(),
    name: z.string().optional().meta({ description: 'names the pipeline when pipeline_id is absent' }),
    service: z.string().optional(),
    source: z.string().optional(),
    message: z.string().optional(),
    metadata: JsonObject.optional(),
    timestamp: Timestamp.optional(),
  }),
);
export const PipelineStatusList = named(
  'PipelineStatusList',
  z.looseObject({
    pipelines: z.array(
      z.looseObject({
        pipeline: z.string(),
        pipeline_type: z.string().nullable(),
        status: z.string(),
        service: z.string().nullable(),
        metadata: JsonObject,
        updated_at: z.string(),
        status_since: z.string().nullable(),
        reports: z.number().int(),
      }),
    ),
    total: z.number().int(),
    counts: z.record(z.string(), z.number()),
  }),
);

export const ServiceReport = named(
  'ServiceReport',
  z.object({
    name: z.string().meta({ example: 'your-service-name' }),
    status: z.enum(['up', 'down', 'unknown']),
    endpoint: z.string().optional(),
    ttl_seconds: z.number().int().optional(),
    metadata: JsonObject.optional(),
    timestamp: Timestamp.optional(),
  }),
);
export const Service = named(
  'Service',
  z.looseObject({ name: z.string(), status: z.string(), endpoint: z.string().nullable(), uptime_seconds: z.number() }),
);
export const ServiceReportReply = named(
  'ServiceReportReply',
  z.looseObject({
    status: z.literal('success'),
    created: z.boolean(),
    changed: z.boolean(),
    previous_status: z.string().nullable(),
    service: Service,
  }),
);
export const ServiceList = named('ServiceList', z.looseObject({ services: z.array(Service), total: z.number().int() }));
export const MonitoringStatus = named(
  'MonitoringStatus',
  z.looseObject({
    services: z.array(
      z.looseObject({
        name: z.string(),
        status: z.enum(['running', 'stopped', 'unknown']),
        uptime_seconds: z.number(),
        port: z.number().nullable(),
      }),
    ),
  }),
);

export const AlertRaise = named(
  'AlertRaise',
  z.object({
    title: z.string().meta({ example: 'High CPU Usage' }),
    message: z.string().optional(),
    severity: z
      .union([z.literal(1), z.literal(2), z.literal(3), z.string()])
      .optional()
      .meta({
        description: '1 info, 2 warning, 3 critical (or the words)',
      }),
    service: z.string().optional(),
    source: z.string().optional(),
    metadata: JsonObject.optional(),
  }),
);
export const Alert = named(
  'Alert',
  z.looseObject({
    id: z.number().int(),
    alert_id: z.string(),
    state: z.string(),
    severity: z.string(),
    message: z.string().nullable(),
    triggered_at: z.string(),
  }),
);
export const AlertRaised = named('AlertRaised', z.looseObject({ status: z.literal('success'), created: z.boolean() }));
export const AlertList = named(
  'AlertList',
  z.looseObject({
    alerts: z.array(Alert),
    active_count: z.number().int(),
    critical_count: z.number().int(),
    warning_count: z.number().int(),
  }),
);
export const Acknowledge = named(
  'Acknowledge',
  z.object({ acknowledged_by: z.string().meta({ example: 'admin' }), notes: z.string().optional() }),
);
export const Resolve = named('Resolve', z.object({ resolved_by: z.string().optional(), notes: z.string().optional() }));

export const AlertRuleInput = named(
  'AlertRuleInput',
  z.object({
    name: z.string().meta({ example: 'high_memory_usage' }),
    type: z.enum(['threshold', 'anomaly']).optional(),
    description: z.string().optional(),
    enabled: z.boolean().optional(),
    metric: z.string(),
    source: z.string().optional(),
    tags: Tags.optional(),
    condition: z.string().optional().meta({
      description:
        'greater_than, greater_than_or_equal, less_than, less_than_or_equal, equal, not_equal (gt, >=, … too)',
    }),
    threshold: z.number().optional(),
    duration_seconds: z.number().optional(),
    recovery_seconds: z.number().optional(),
    severity: z.string().optional().meta({ description: 'info, warning, critical' }),
    algorithm: z.string().optional(),
    sensitivity: z.number().optional(),
    window_seconds: z.number().optional(),
    direction: z.enum(['both', 'above', 'below']).optional(),
    notify: z
      .object({
        webhook: z.string().nullable().optional(),
        email: z.union([z.string(), z.array(z.string())]).optional(),
        secret: z.string().optional(),
      })
      .optional(),
    webhook_secret: z.string().optional(),
    rotate_webhook_secret: z.boolean().optional(),
  }),
);
export const AlertRule = named(
  'AlertRule',
  z.looseObject({
    id: z.number().int(),
    name: z.string(),
    type: z.string(),
    metric: z.string(),
    webhook_secret: z.string().optional().meta({ description: 'shown once, when made or rotated' }),
  }),
);
export const AlertRuleList = named(
  'AlertRuleList',
  z.looseObject({ rules: z.array(AlertRule), total: z.number().int() }),
);

const Stage = z.object({
  operation: z.enum(['filter', 'aggregate', 'transform', 'rename', 'threshold', 'select']),
  params: JsonObject.optional(),
});
export const PipelineDefinition = named(
  'PipelineDefinition',
  z.object({
    name: z.string().meta({ example: 'experiment_summary' }),
    description: z.string().optional(),
    enabled: z.boolean().optional(),
    pipeline: z.array(Stage).min(1),
    output: z
      .union([
        z.object({ destination: z.literal('none') }),
        z.object({
          destination: z.literal('metric'),
          metric: z.string(),
          column: z.string().optional(),
          source: z.string().nullable().optional(),
          tags: Tags.optional(),
          unit: z.string().nullable().optional(),
        }),
        z.object({ destination: z.literal('webhook'), url: z.string(), secret: z.string().optional() }),
      ])
      .optional(),
    schedule: z.object({ every: z.string(), delay: z.string().optional() }).nullable().optional(),
  }),
);
export const Pipeline = named(
  'Pipeline',
  z.looseObject({ id: z.number().int(), name: z.string(), pipeline: z.array(z.looseObject({})) }),
);
export const PipelineList = named(
  'PipelineList',
  z.looseObject({ pipelines: z.array(Pipeline), total: z.number().int() }),
);
export const RunRange = named(
  'RunRange',
  z.object({ from: z.union([z.string(), z.number()]).optional(), to: z.union([z.string(), z.number()]).optional() }),
);
export const PipelineRun = named('PipelineRun', z.looseObject({}));
export const PipelineRuns = named(
  'PipelineRuns',
  z.looseObject({ pipeline_id: z.number().int(), runs: z.array(z.looseObject({})), total: z.number().int() }),
);

export const WebhookDelivery = named(
  'WebhookDelivery',
  z.looseObject({ id: z.number().int(), subject: z.string(), status: z.string(), url: z.string() }),
);
export const AlertNotifications = named(
  'AlertNotifications',
  z.object({ alert_id: z.string(), deliveries: z.array(WebhookDelivery), total: z.number().int() }),
);
export const WebhookDeliveries = named(
  'WebhookDeliveries',
  z.object({ deliveries: z.array(WebhookDelivery), total: z.number().int() }),
);
