import { FieldProblem, fieldErrors } from '../common/errors.js';
import { DAY, formatDuration, HOUR, MINUTE, SECOND } from '../common/time.js';
import type { TagFilter } from '../query/query-spec.js';
import { FormulaError, parseFormula, ParsedFormula } from './formula.js';
import { bindSteps, COMPARISONS, Comparison, defines, references, Step } from './stages.js';

/**
 * A pipeline definition as users send it (collector-api.md, "Custom Data Pipeline") → a checked,
 * normalised definition and the plan that runs it. Pure. Every problem is a 400 that names the
 * stage index and field (`pipeline[1].params.window`); nothing is stored unless all is well.
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

export const AGG_FUNCTIONS = ['avg', 'sum', 'min', 'max', 'count', 'first', 'last', 'p50', 'p90', 'p95', 'p99'] as const;
export type AggFunction = (typeof AGG_FUNCTIONS)[number];
export const PERCENTILES: Readonly<Record<string, number>> = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99 };

export const OPERATIONS = ['filter', 'aggregate', 'transform', 'rename', 'threshold', 'select'] as const;
export const DESTINATIONS = ['none', 'metric', 'webhook'] as const;
export type Destination = (typeof DESTINATIONS)[number];

/** group_by entry that means the series' source rather than a tag. */
export const SOURCE_KEY = 'source';

const MAX_STAGES = 20;
const MAX_LIST = 100;
const MAX_GROUP_BY = 10;
const MAX_WINDOW = 7 * DAY;
const MAX_DELAY = DAY;
/** Overlapping windows read each point window/every times; beyond this it is a mistake. */
const MAX_OVERLAP = 60;
export const DEFAULT_DELAY = '30s';
export const DEFAULT_COLUMN = 'value';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$/;
/** As ingest accepts them (src/ingestion/decode.ts): derived series must be storable like any other. */
const METRIC_NAME = /^[A-Za-z_][A-Za-z0-9_.:\-]*$/;
const TAG_KEY = /^[A-Za-z_][A-Za-z0-9_.\-]*$/;
const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RESERVED = new Set(['constructor', 'prototype', '__proto__']);
/** Fields of a pipeline as GET returns it that a PUT of that same document may carry back; ignored. */
const READ_ONLY = new Set(['id', 'version', 'created_at', 'updated_at', 'columns', 'last_run', 'state', 'webhook_secret', 'webhook_signed']);

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
  | { destination: 'metric'; metric: string; column: string; source: string | null; tags: Record<string, string>; unit: string | null }
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

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const cleanText = (s: string) => !s.includes('\u0000') && (s as string & { isWellFormed(): boolean }).isWellFormed();

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

/** Parses and checks a definition; throws a 400 naming every bad field. */
export function parsePipeline(body: unknown, limits: DefinitionLimits): ParsedPipeline {
  const problems: FieldProblem[] = [];
  const problem = (field: string, message: string) => {
    if (problems.length < 20) problems.push({ field, message });
  };
  if (!isObject(body)) throw fieldErrors([{ field: 'body', message: 'must be a JSON object {name, pipeline: [...], output, schedule}' }]);

  for (const k of Object.keys(body)) {
    if (!['name', 'description', 'enabled', 'pipeline', 'output', 'schedule'].includes(k) && !READ_ONLY.has(k)) {
      problem(k, 'unknown field (expected name, description, enabled, pipeline, output, schedule)');
    }
  }
  const name = typeof body.name === 'string' ? body.name : '';
  if (!NAME.test(name)) problem('name', 'is required: 1 to 100 letters, digits, _ . - starting with a letter or digit');
  let description: string | null = null;
  if (body.description !== undefined && body.description !== null) {
    if (typeof body.description !== 'string' || body.description.length > 1000 || !cleanText(body.description)) problem('description', 'must be text of at most 1000 characters');
    else description = body.description;
  }
  let enabled = true;
  if (body.enabled !== undefined) {
    if (typeof body.enabled !== 'boolean') problem('enabled', 'must be true or false');
    else enabled = body.enabled;
  }

  // Stages
  const stages: StageJson[] = [];
  const steps: Step[] = [];
  let filter: { metrics: string[] | null; sources: string[]; tags: TagFilter[] } = { metrics: null, sources: [], tags: [] };
  let aggregate: { window: string; windowMs: number; functions: AggFunction[]; groupBy: string[] } | undefined;
  if (!Array.isArray(body.pipeline) || body.pipeline.length === 0) {
    problem('pipeline', 'is required: a non-empty array of stages {operation, params}');
  } else if (body.pipeline.length > MAX_STAGES) {
    problem('pipeline', `has more than ${MAX_STAGES} stages`);
  } else {
    let sawFilter = false;
    let unknownOperation = false; // then a missing aggregate is most likely that stage: say it once
    body.pipeline.forEach((raw: unknown, index: number) => {
      const at = `pipeline[${index}]`;
      if (!isObject(raw)) return problem(at, 'must be an object {operation, params}');
      for (const k of Object.keys(raw)) if (k !== 'operation' && k !== 'params') problem(`${at}.${k}`, 'unknown field (a stage has operation and params)');
      const op = raw.operation;
      if (typeof op !== 'string' || !(OPERATIONS as readonly string[]).includes(op)) {
        unknownOperation = true;
        return problem(`${at}.operation`, `must be one of ${OPERATIONS.join(', ')} (got ${JSON.stringify(op)})`);
      }
      const params = raw.params === undefined ? {} : raw.params;
      if (!isObject(params)) return problem(`${at}.params`, 'must be an object');
      const p = `${at}.params`;
      const allow = (...keys: string[]) => {
        for (const k of Object.keys(params)) if (!keys.includes(k)) problem(`${p}.${k}`, `unknown field for ${op} (expected ${keys.join(', ')})`);
      };
      switch (op) {
        case 'filter': {
          allow('metrics', 'metric', 'sources', 'source', 'tags');
          if (sawFilter) problem(`${at}.operation`, 'only one filter stage is allowed; put every condition in it');
          if (aggregate) problem(`${at}.operation`, 'a filter selects series and must come before the aggregate stage');
          sawFilter = true;
          const metrics = stringList(params, ['metrics', 'metric'], p, problem, (s) => METRIC_NAME.test(s) && s.length <= limits.maxNameLength, 'metric names');
          const sources = stringList(params, ['sources', 'source'], p, problem, (s) => s.length > 0 && s.length <= limits.maxNameLength && cleanText(s), 'sources');
          const tags = tagFilters(params.tags, `${p}.tags`, problem);
          filter = { metrics: metrics && metrics.length > 0 ? metrics : null, sources: sources ?? [], tags };
          const normal: Json = {};
          if (metrics?.length) normal.metrics = metrics;
          if (sources?.length) normal.sources = sources;
          if (tags.length) normal.tags = Object.fromEntries(tags.map((t) => [t.key, t.values.length === 1 ? t.values[0] : t.values]));
          stages.push({ operation: 'filter', params: normal });
          break;
        }
        case 'aggregate': {
          allow('window', 'functions', 'group_by');
          if (aggregate) problem(`${at}.operation`, 'only one aggregate stage is allowed');
          const windowMs = parseWindowDuration(params.window);
          if (!Number.isFinite(windowMs)) problem(`${p}.window`, `is required: a duration such as 30s, 5m, 1h or 1d (got ${JSON.stringify(params.window)})`);
          else if (windowMs > MAX_WINDOW) problem(`${p}.window`, `must be at most ${formatDuration(MAX_WINDOW)}`);
          const fnsRaw = typeof params.functions === 'string' ? [params.functions] : params.functions;
          const functions: AggFunction[] = [];
          if (!Array.isArray(fnsRaw) || fnsRaw.length === 0) problem(`${p}.functions`, `is required: a non-empty list among ${AGG_FUNCTIONS.join(', ')}`);
          else
            fnsRaw.forEach((f, i) => {
              if (typeof f !== 'string' || !(AGG_FUNCTIONS as readonly string[]).includes(f)) problem(`${p}.functions[${i}]`, `unknown function ${JSON.stringify(f)}; allowed: ${AGG_FUNCTIONS.join(', ')}`);
              else if (!functions.includes(f as AggFunction)) functions.push(f as AggFunction);
            });
          const gbRaw = params.group_by === undefined ? [] : typeof params.group_by === 'string' ? [params.group_by] : params.group_by;
          const groupBy: string[] = [];
          if (!Array.isArray(gbRaw)) problem(`${p}.group_by`, 'must be a list of tag keys (or source)');
          else if (gbRaw.length > MAX_GROUP_BY) problem(`${p}.group_by`, `at most ${MAX_GROUP_BY} keys`);
          else
            gbRaw.forEach((k, i) => {
              if (typeof k !== 'string' || !TAG_KEY.test(k) || k.length > limits.maxTagKeyLength || RESERVED.has(k) || k.startsWith('__')) {
                problem(`${p}.group_by[${i}]`, 'must be a tag key (letters, digits, _ . -) or source');
              } else if (!groupBy.includes(k)) groupBy.push(k);
            });
          aggregate = { window: typeof params.window === 'string' ? params.window.trim() : '', windowMs, functions, groupBy };
          const normal: Json = { window: aggregate.window, functions };
          if (groupBy.length) normal.group_by = groupBy;
          stages.push({ operation: 'aggregate', params: normal });
          break;
        }
        default: {
          if (!aggregate && !unknownOperation) problem(`${at}.operation`, `${op} works on aggregated rows and must come after the aggregate stage`);
          const step = postStep(op as 'transform' | 'rename' | 'threshold' | 'select', params, index, p, allow, problem, steps);
          if (step) {
            steps.push(step.step);
            stages.push({ operation: op as StageJson['operation'], params: step.normal });
          }
        }
      }
    });
    if (!aggregate && !unknownOperation) problem('pipeline', 'needs an aggregate stage {"operation": "aggregate", "params": {"window": "5m", "functions": ["avg"]}}');
  }

  // Which metrics: named in the filter, else inferred from the names later stages read.
  const out = isObject(body.output) ? body.output : body.output === undefined || body.output === null ? { destination: 'none' } : undefined;
  if (!out) problem('output', 'must be an object {destination: none | metric | webhook, ...}');
  const outputColumnRef = out && out.destination === 'metric' && typeof out.column === 'string' ? out.column : undefined;
  let metrics = filter.metrics;
  if (aggregate && !metrics) {
    const inferred = inferMetrics(steps, aggregate.functions, outputColumnRef);
    if (inferred.length > 0) metrics = inferred;
  }
  let aggColumns: string[] | null = null;
  if (aggregate && metrics) {
    aggColumns = [];
    const owner = new Map<string, string>();
    for (const m of metrics) {
      for (const fn of aggregate.functions) {
        const c = columnFor(fn, m);
        if (owner.has(c) && owner.get(c) !== m) problem('pipeline', `metrics ${owner.get(c)} and ${m} both give column ${c}`);
        owner.set(c, m);
        if (!aggColumns.includes(c)) aggColumns.push(c);
      }
    }
  }
  let columns: string[] | null = null;
  if (aggregate) {
    const bound = bindSteps(steps, aggColumns ?? []);
    for (const p of bound.problems) problem(p.field, p.message);
    columns = aggColumns ? bound.columns : null;
  }

  // Output
  let output: OutputJson = { destination: 'none' };
  let secret: string | null | undefined;
  if (out) {
    const dest = out.destination ?? 'none';
    if (typeof dest !== 'string' || !(DESTINATIONS as readonly string[]).includes(dest)) {
      problem('output.destination', `must be one of ${DESTINATIONS.join(', ')} (got ${JSON.stringify(dest)})`);
    } else {
      const allow = (...keys: string[]) => {
        for (const k of Object.keys(out)) if (k !== 'destination' && !keys.includes(k)) problem(`output.${k}`, `unknown field for destination ${dest} (expected ${keys.join(', ') || 'nothing else'})`);
      };
      if (dest === 'none') {
        allow();
      } else if (dest === 'webhook') {
        allow('url', 'secret');
        if (typeof out.url !== 'string' || out.url === '') problem('output.url', 'is required for destination webhook');
        if (out.secret !== undefined && out.secret !== null && (typeof out.secret !== 'string' || out.secret.length < 16 || out.secret.length > 256 || !cleanText(out.secret))) {
          problem('output.secret', 'must be 16 to 256 characters (or null for unsigned deliveries)');
        }
        secret = out.secret as string | null | undefined;
        output = { destination: 'webhook', url: typeof out.url === 'string' ? out.url : '' };
      } else {
        allow('metric', 'column', 'source', 'tags', 'unit');
        const metric = typeof out.metric === 'string' ? out.metric : '';
        if (!METRIC_NAME.test(metric) || metric.startsWith('__') || metric.length > limits.maxNameLength) {
          problem('output.metric', 'is required for destination metric: a metric name (a letter or _, then letters, digits, _ . : -)');
        }
        let column = outputColumnRef;
        if (out.column !== undefined && column === undefined) problem('output.column', 'must be a column name');
        const lastTransform = [...steps].reverse().find((s) => s.kind === 'transform');
        if (column === undefined && columns) {
          column = lastTransform && columns.includes((lastTransform as { as: string }).as) ? (lastTransform as { as: string }).as : columns.length === 1 ? columns[0] : undefined;
          if (column === undefined) problem('output.column', `is required: the pipeline produces several columns (${columns.join(', ')})`);
        } else if (column === undefined) {
          problem('output.column', 'is required when the filter names no metrics and no stage names a column');
        } else if (columns && !columns.includes(column)) {
          problem('output.column', `names column ${column}, which the pipeline does not produce (it produces ${columns.join(', ') || 'nothing'})`);
        }
        let source: string | null = null;
        if (out.source !== undefined && out.source !== null) {
          if (typeof out.source !== 'string' || out.source === '' || out.source.length > limits.maxNameLength || !cleanText(out.source)) problem('output.source', `must be 1 to ${limits.maxNameLength} characters`);
          else source = out.source;
        }
        const tags: Record<string, string> = {};
        if (out.tags !== undefined && out.tags !== null) {
          if (!isObject(out.tags)) problem('output.tags', 'must be an object of tag key → value');
          else {
            for (const [k, v] of Object.entries(out.tags)) {
              if (!TAG_KEY.test(k) || k.startsWith('__') || RESERVED.has(k) || k.length > limits.maxTagKeyLength) problem(`output.tags.${k}`, 'is not a valid tag key');
              else if (typeof v !== 'string' || v === '' || v.length > limits.maxTagValueLength || !cleanText(v)) problem(`output.tags.${k}`, `must be 1 to ${limits.maxTagValueLength} characters`);
              else if (aggregate?.groupBy.includes(k)) problem(`output.tags.${k}`, 'is also a group_by key: the group gives it a value');
              else tags[k] = v;
            }
            if (Object.keys(tags).length + (aggregate?.groupBy.length ?? 0) > limits.maxTags) problem('output.tags', `derived series would have more than ${limits.maxTags} tags (INGEST_MAX_TAGS)`);
          }
        }
        let unit: string | null = null;
        if (out.unit !== undefined && out.unit !== null) {
          if (typeof out.unit !== 'string' || out.unit.length > 64 || !cleanText(out.unit)) problem('output.unit', 'must be at most 64 characters');
          else unit = out.unit;
        }
        output = { destination: 'metric', metric, column: column ?? '', source, tags, unit };
      }
    }
  }

  // Schedule
  let schedule: ScheduleJson | null = null;
  let stepMs = aggregate?.windowMs ?? NaN;
  let delayMs = parseWindowDuration(DEFAULT_DELAY);
  if (body.schedule !== undefined && body.schedule !== null) {
    const s = body.schedule;
    if (!isObject(s)) problem('schedule', 'must be an object {every, delay?}, or null to run only on demand');
    else {
      for (const k of Object.keys(s)) if (k !== 'every' && k !== 'delay') problem(`schedule.${k}`, 'unknown field (expected every, delay)');
      const every = parseWindowDuration(s.every);
      if (!Number.isFinite(every)) problem('schedule.every', `is required: a duration such as 1m or 5m (got ${JSON.stringify(s.every)})`);
      else if (every > MAX_WINDOW) problem('schedule.every', `must be at most ${formatDuration(MAX_WINDOW)}`);
      else if (aggregate && Number.isFinite(aggregate.windowMs) && aggregate.windowMs / every > MAX_OVERLAP) {
        problem('schedule.every', `a ${aggregate.window} window every ${s.every} reads each point ${Math.round(aggregate.windowMs / every)} times; at most ${MAX_OVERLAP}`);
      }
      if (s.delay !== undefined) {
        delayMs = parseWindowDuration(s.delay, true);
        if (!Number.isFinite(delayMs) || delayMs > MAX_DELAY) problem('schedule.delay', `must be a duration from 0s to ${formatDuration(MAX_DELAY)} (got ${JSON.stringify(s.delay)})`);
      }
      stepMs = every;
      schedule = { every: typeof s.every === 'string' ? s.every.trim() : '', delay: typeof s.delay === 'string' ? s.delay.trim() : DEFAULT_DELAY };
    }
  }

  if (problems.length > 0) throw fieldErrors(problems);
  const definition: PipelineDefinition = { name, description, enabled, pipeline: stages, output, schedule };
  const plan: PipelinePlan = {
    definition,
    metrics,
    sources: filter.sources,
    tags: filter.tags,
    windowMs: aggregate!.windowMs,
    stepMs,
    delayMs,
    functions: aggregate!.functions,
    groupBy: aggregate!.groupBy,
    steps,
    columns,
  };
  return { definition, plan, secret };
}

/** Metrics named by references to aggregate columns that no earlier stage defines, in order of use. */
function inferMetrics(steps: Step[], functions: AggFunction[], outputColumn: string | undefined): string[] {
  const defined = new Set<string>();
  const metrics: string[] = [];
  const consider = (name: string) => {
    if (defined.has(name)) return;
    const i = name.indexOf('_');
    if (i <= 0) return;
    const fn = name.slice(0, i), metric = name.slice(i + 1);
    if ((functions as string[]).includes(fn) && METRIC_NAME.test(metric) && !metrics.includes(metric)) metrics.push(metric);
  };
  for (const step of steps) {
    for (const r of references(step)) consider(r.name);
    for (const d of defines(step)) defined.add(d);
  }
  if (outputColumn) consider(outputColumn);
  return metrics;
}

function postStep(
  op: 'transform' | 'rename' | 'threshold' | 'select',
  params: Json,
  index: number,
  p: string,
  allow: (...keys: string[]) => void,
  problem: (field: string, message: string) => void,
  earlier: Step[],
): { step: Step; normal: Json } | undefined {
  const formula = (v: unknown, field: string): ParsedFormula | undefined => {
    try {
      return parseFormula(v);
    } catch (err) {
      if (!(err instanceof FormulaError)) throw err;
      problem(field, err.message);
      return undefined;
    }
  };
  const columnName = (v: unknown, field: string): string | undefined => {
    if (typeof v !== 'string' || !COLUMN_NAME.test(v) || v.length > 200 || RESERVED.has(v) || v.startsWith('__')) {
      problem(field, 'must be a column name: a letter or _, then letters, digits or _');
      return undefined;
    }
    return v;
  };
  switch (op) {
    case 'transform': {
      allow('formula', 'as');
      const f = formula(params.formula, `${p}.formula`);
      const as = params.as === undefined ? DEFAULT_COLUMN : columnName(params.as, `${p}.as`);
      if (!f || !as) return undefined;
      return { step: { kind: 'transform', index, formula: f, as }, normal: { formula: f.text, as } };
    }
    case 'rename': {
      allow('columns');
      if (!isObject(params.columns) || Object.keys(params.columns).length === 0) {
        problem(`${p}.columns`, 'is required: an object {old_name: new_name}');
        return undefined;
      }
      const pairs: Array<[string, string]> = [];
      for (const [from, to] of Object.entries(params.columns)) {
        const t = columnName(to, `${p}.columns.${from}`);
        if (t) pairs.push([from, t]);
      }
      return { step: { kind: 'rename', index, pairs }, normal: { columns: Object.fromEntries(pairs) } };
    }
    case 'threshold': {
      allow('column', 'op', 'value', 'condition');
      if (params.condition !== undefined) {
        if (params.column !== undefined || params.op !== undefined || params.value !== undefined) {
          problem(`${p}.condition`, 'give either condition, or column, op and value');
          return undefined;
        }
        const f = formula(params.condition, `${p}.condition`);
        return f ? { step: { kind: 'threshold', index, condition: f }, normal: { condition: f.text } } : undefined;
      }
      const lastTransform = [...earlier].reverse().find((s) => s.kind === 'transform') as { as: string } | undefined;
      const column = params.column === undefined ? lastTransform?.as : columnName(params.column, `${p}.column`);
      if (params.column === undefined && !column) problem(`${p}.column`, 'is required (no transform before it says which column)');
      const opv = params.op;
      if (typeof opv !== 'string' || !(COMPARISONS as readonly string[]).includes(opv)) problem(`${p}.op`, `must be one of ${COMPARISONS.join(' ')}`);
      if (typeof params.value !== 'number' || !Number.isFinite(params.value)) problem(`${p}.value`, 'must be a number');
      if (!column || typeof opv !== 'string' || !(COMPARISONS as readonly string[]).includes(opv) || typeof params.value !== 'number' || !Number.isFinite(params.value)) return undefined;
      return { step: { kind: 'threshold', index, column, op: opv as Comparison, value: params.value }, normal: { column, op: opv, value: params.value } };
    }
    case 'select': {
      allow('columns');
      const cols = params.columns;
      if (!Array.isArray(cols) || cols.length === 0) {
        problem(`${p}.columns`, 'is required: a non-empty list of column names');
        return undefined;
      }
      const names = cols.map((c, i) => columnName(c, `${p}.columns[${i}]`));
      if (names.some((n) => n === undefined)) return undefined;
      if (new Set(names).size !== names.length) {
        problem(`${p}.columns`, 'names a column twice');
        return undefined;
      }
      return { step: { kind: 'select', index, columns: names as string[] }, normal: { columns: names } };
    }
  }
}

function stringList(
  params: Json,
  keys: [string, string],
  p: string,
  problem: (field: string, message: string) => void,
  valid: (s: string) => boolean,
  what: string,
): string[] | undefined {
  const given = keys.filter((k) => params[k] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length === 2) {
    problem(`${p}.${keys[1]}`, `give ${keys[0]} or ${keys[1]}, not both`);
    return undefined;
  }
  const field = `${p}.${given[0]}`;
  const raw = params[given[0]];
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.length > MAX_LIST) {
    problem(field, `must be a string or a list of at most ${MAX_LIST} ${what}`);
    return undefined;
  }
  const out: string[] = [];
  list.forEach((s, i) => {
    if (typeof s !== 'string' || !valid(s)) problem(`${field}[${i}]`, `is not one of the valid ${what}`);
    else if (!out.includes(s)) out.push(s);
  });
  return out;
}

/** `{host: "a", region: ["eu", "us"]}`: different keys must all match, a list means any of its values. */
function tagFilters(v: unknown, field: string, problem: (field: string, message: string) => void): TagFilter[] {
  if (v === undefined || v === null) return [];
  if (!isObject(v)) {
    problem(field, 'must be an object {key: value or [values]}');
    return [];
  }
  const out: TagFilter[] = [];
  for (const [key, val] of Object.entries(v)) {
    const values = typeof val === 'string' ? [val] : val;
    if (!TAG_KEY.test(key) || RESERVED.has(key)) problem(`${field}.${key}`, 'is not a valid tag key');
    else if (!Array.isArray(values) || values.length === 0 || values.length > MAX_LIST || !values.every((x) => typeof x === 'string' && x.length > 0 && cleanText(x))) {
      problem(`${field}.${key}`, 'must be a non-empty string or a list of them');
    } else out.push({ key, values: [...new Set(values as string[])] });
  }
  return out;
}
