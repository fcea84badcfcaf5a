import { DAY, HOUR, MINUTE, SECOND } from '../common/time.js';
import type { TagFilter } from '../query/query-spec.js';
import type { Step } from './stages.js';

/**
 * What a pipeline definition is (collector-api.md, "Custom Data Pipeline"): its vocabulary, the
 * normalised definition that is stored and shown, and the plan that runs it. Pure. Parsing is
 * parse-pipeline.ts, one parser per stage under parsers/.
 *
 * ```json
 * {"name": "experiment_summary",
 *  "pipeline": [{"operation": "filter", "params": {"tags": {"experiment_id": "exp_001"}}},
 *               {"operation": "aggregate", "params": {"window": "5m", "functions": ["avg", "max"]}},
 *               {"operation": "transform", "params": {"formula": "avg_cpu + max_memory"}}],
 *  "output": {"destination": "webhook", "url": "https://your-system.com/webhook"},
 *  "schedule": {"every": "5m"}}
 * ```
 * Aggregate columns are named `<function>_<metric>` (characters of the metric name outside
 * [A-Za-z0-9_] become `_`). Without `metrics` in the filter, the metrics are those the later
 * stages name (`avg_cpu` → metric `cpu`); with no names at all, every metric of the matching series.
 */

export const AGG_FUNCTIONS = [
  'avg',
  'sum',
  'min',
  'max',
  'count',
  'first',
  'last',
  'p50',
  'p90',
  'p95',
  'p99',
] as const;
export type AggFunction = (typeof AGG_FUNCTIONS)[number];
export const PERCENTILES: Readonly<Record<string, number>> = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99 };

export const OPERATIONS = ['filter', 'aggregate', 'transform', 'rename', 'threshold', 'select'] as const;
export const DESTINATIONS = ['none', 'metric', 'webhook'] as const;
export type Destination = (typeof DESTINATIONS)[number];

/** group_by entry that means the series' source rather than a tag. */
export const SOURCE_KEY = 'source';

/** The longest window (and schedule step). */
export const MAX_WINDOW = 7 * DAY;
export const DEFAULT_DELAY = '30s';
export const DEFAULT_COLUMN = 'value';

export interface DefinitionLimits {
  maxNameLength: number;
  maxTags: number;
  maxTagKeyLength: number;
  maxTagValueLength: number;
}

export interface StageJson {
  operation: (typeof OPERATIONS)[number];
  params: Record<string, unknown>;
}

export type OutputJson =
  | { destination: 'none' }
  | {
      destination: 'metric';
      metric: string;
      column: string;
      source: string | null;
      tags: Record<string, string>;
      unit: string | null;
    }
  | { destination: 'webhook'; url: string };

export interface ScheduleJson {
  every: string;
  delay: string;
}

/** The normalised definition: what is stored and shown. Parsing it again gives the same plan. */
export interface PipelineDefinition {
  name: string;
  description: string | null;
  enabled: boolean;
  pipeline: StageJson[];
  output: OutputJson;
  schedule: ScheduleJson | null;
}

export interface PipelinePlan {
  definition: PipelineDefinition;
  /** null: every metric of the matching series, columns found when it runs. */
  metrics: string[] | null;
  sources: string[];
  tags: TagFilter[];
  windowMs: number;
  /** Distance between window ends: `schedule.every`, else the window (tumbling windows). */
  stepMs: number;
  delayMs: number;
  functions: AggFunction[];
  groupBy: string[];
  steps: Step[];
  /** Output columns when known at save (null in discovery mode). */
  columns: string[] | null;
}

export interface ParsedPipeline {
  definition: PipelineDefinition;
  plan: PipelinePlan;
  /** `output.secret` as sent: a string, null (no signature), or undefined (not given). */
  secret: string | null | undefined;
}

/** `5m` → ms: whole seconds, minutes, hours, days or weeks (`0s` only where `zero`). */
export function parseWindowDuration(v: unknown, zero = false): number {
  if (typeof v !== 'string') return NaN;
  const m = /^(\d{1,9})([smhdw])$/.exec(v.trim());
  if (!m) return NaN;
  const ms = Number(m[1]) * { s: SECOND, m: MINUTE, h: HOUR, d: DAY, w: 7 * DAY }[m[2] as 's']!;
  return ms > 0 || (zero && ms === 0) ? ms : NaN;
}

/** `avg_cpu` for function avg of metric cpu; characters outside [A-Za-z0-9_] become `_`. */
export const columnFor = (fn: AggFunction, metric: string) => `${fn}_${metric.replace(/[^A-Za-z0-9_]/g, '_')}`;
