import { z } from 'zod';
import { named } from '../registry.js';
import { JsonObject } from './common.js';

/** Health, jobs, configuration, API keys, performance, collector and monitoring answers. */

export const Health = named(
  'Health',
  z.looseObject({
    status: z.enum(['healthy', 'degraded', 'unhealthy']),
    service: z.string(),
    version: z.string(),
    uptime: z.string(),
    uptime_seconds: z.number(),
    timestamp: z.string(),
    components: z.record(z.string(), JsonObject),
  }),
);
export const Liveness = named('Liveness', z.object({ status: z.enum(['ok', 'unavailable']) }));

export const Job = named(
  'Job',
  z.looseObject({ name: z.string(), schedule: z.string().nullable(), last_run: JsonObject.nullable().optional() }),
);
export const JobList = named('JobList', z.object({ jobs: z.array(Job) }));
export const JobRun = named('JobRun', z.looseObject({ outcome: z.string() }));

export const Scope = named('Scope', z.enum(['read', 'ingest', 'admin']));
/** The key request's schema validates it too: it lives with its parser. */
export { ApiKeyInput } from '../../auth/key-spec.js';
export const ApiKey = named(
  'ApiKey',
  z.object({
    id: z.number().int(),
    name: z.string(),
    prefix: z.string(),
    scopes: z.array(Scope),
    rate_limits: z.record(z.string(), z.number()).nullable(),
    created_at: z.string(),
    created_by: z.string().nullable(),
    expires_at: z.string().nullable(),
    last_used_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  }),
);
export const ApiKeyCreated = named(
  'ApiKeyCreated',
  z.object({ ...ApiKey.shape, key: z.string().meta({ description: 'the key itself, shown this once' }) }),
);
export const ApiKeyList = named('ApiKeyList', z.object({ keys: z.array(ApiKey) }));
export const WhoAmI = named(
  'WhoAmI',
  z.object({ name: z.string(), key_id: z.number().int().nullable(), scopes: z.array(Scope) }),
);

/** PUT /api/v1/config takes a partial document: any of the sections, any of their fields. */
export const ConfigPatch = named(
  'ConfigPatch',
  z.object({
    storage: JsonObject.optional(),
    processing: JsonObject.optional(),
    alerting: JsonObject.optional(),
    collector: JsonObject.optional(),
    jobs: JsonObject.optional(),
  }),
);
export const ConfigDocument = named(
  'ConfigDocument',
  z.looseObject({
    storage: JsonObject,
    processing: JsonObject,
    alerting: JsonObject,
    collector: JsonObject,
    jobs: JsonObject,
    version: z.number().int(),
    updated_at: z.string().nullable(),
    updated_by: z.string().nullable(),
  }),
);
export const ConfigHistory = named(
  'ConfigHistory',
  z.object({ history: z.array(JsonObject), total: z.number().int() }),
);

export const Performance = named(
  'Performance',
  z.looseObject({ ingestion: JsonObject, storage: JsonObject, queries: JsonObject, timestamp: z.string() }),
);

export const HostMetrics = named(
  'HostMetrics',
  z.looseObject({
    cpu: z.number().nullable(),
    ram: z.number().nullable(),
    gpu: z.number().nullable(),
    temperature: z.number().nullable(),
    disk: JsonObject.nullable(),
    timestamp: z.string(),
    host: z.string(),
  }),
);
export const GpuReport = named(
  'GpuReport',
  z.looseObject({ available: z.boolean(), count: z.number().int(), gpus: z.array(JsonObject) }),
);

/** Monitoring answers: open documents whose top-level fields are listed in the README. */
export const MonitoringDocument = named('MonitoringDocument', z.looseObject({}));
export const GrafanaDashboard = named('GrafanaDashboard', z.looseObject({ dashboard: JsonObject }));
export const DetailedHealth = named(
  'DetailedHealth',
  z.looseObject({
    status: z.enum(['healthy', 'degraded', 'unhealthy']),
    components: z.record(z.string(), JsonObject.nullable()),
    timestamp: z.string(),
  }),
);
