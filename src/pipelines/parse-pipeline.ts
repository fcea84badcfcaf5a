import { fieldErrors } from '../common/errors.js';
import { isObject, Json, Problems } from '../common/input.js';
import {
  DefinitionLimits,
  OPERATIONS,
  ParsedPipeline,
  PipelineDefinition,
  PipelinePlan,
  StageJson,
} from './definition.js';
import { AggregateSpec, parseAggregate } from './parsers/aggregate.js';
import { aggregateColumns, inferMetrics } from './parsers/columns.js';
import type { StageContext } from './parsers/common.js';
import { parseFilter, SeriesFilter } from './parsers/filter.js';
import { parseHeader } from './parsers/header.js';
import { outputColumnRef, outputObject, parseOutput } from './parsers/output.js';
import { parseRename } from './parsers/rename.js';
import { parseSchedule } from './parsers/schedule.js';
import { parseSelect } from './parsers/select.js';
import { parseThreshold } from './parsers/threshold.js';
import { parseTransform } from './parsers/transform.js';
import { bindSteps, Step } from './stages.js';

const MAX_STAGES = 20;

/** The stages that work on aggregated rows, each with its parser. */
const ROW_STAGES: Record<
  'transform' | 'rename' | 'threshold' | 'select',
  (params: Json, s: StageContext) => { step: Step; stage: StageJson } | undefined
> = {
  transform: parseTransform,
  rename: parseRename,
  threshold: parseThreshold,
  select: parseSelect,
};

/**
 * A definition as users send it → the checked, normalised definition and the plan that runs it.
 * Pure. Every problem is a 400 that names the stage index and field (`pipeline[1].params.window`),
 * all of them at once (up to 20); nothing is stored unless all is well. The parsers (parsers/)
 * each check one part; this composes them in the order problems are reported: the definition's
 * own fields, each stage, the output's shape, the columns (metrics inferred from the names later
 * stages use, then every reference bound), the output's fields, the schedule.
 */
export function parsePipeline(body: unknown, limits: DefinitionLimits): ParsedPipeline {
  if (!isObject(body))
    throw fieldErrors([{ field: 'body', message: 'must be a JSON object {name, pipeline: [...], output, schedule}' }]);
  const problems = new Problems();
  const { name, description, enabled } = parseHeader(body, problems);
  const { stages, steps, filter, aggregate } = parseStages(body.pipeline, problems, limits);

  const out = outputObject(body.output, problems);
  let metrics = filter.metrics;
  if (aggregate && !metrics) {
    const inferred = inferMetrics(steps, aggregate.functions, outputColumnRef(out));
    if (inferred.length > 0) metrics = inferred;
  }
  const aggColumns = aggregate && metrics ? aggregateColumns(metrics, aggregate.functions, problems) : null;
  let columns: string[] | null = null;
  if (aggregate) {
    const bound = bindSteps(steps, aggColumns ?? []);
    for (const p of bound.problems) problems.add(p.field, p.message);
    columns = aggColumns ? bound.columns : null;
  }
  const { output, secret } = parseOutput(out, { problems, limits, steps, columns, groupBy: aggregate?.groupBy });
  const { schedule, stepMs, delayMs } = parseSchedule(body.schedule, aggregate, problems);

  problems.throwIfAny();
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

/** The stages in order: each `{operation, params}` checked, then handed to its parser. */
function parseStages(raw: unknown, problems: Problems, limits: DefinitionLimits) {
  const stages: StageJson[] = [];
  const steps: Step[] = [];
  let filter: SeriesFilter = { metrics: null, sources: [], tags: [] };
  let aggregate: AggregateSpec | undefined;
  if (!Array.isArray(raw) || raw.length === 0) {
    problems.add('pipeline', 'is required: a non-empty array of stages {operation, params}');
    return { stages, steps, filter, aggregate };
  }
  if (raw.length > MAX_STAGES) {
    problems.add('pipeline', `has more than ${MAX_STAGES} stages`);
    return { stages, steps, filter, aggregate };
  }
  const seen = { filter: false, aggregate: false, unknownOperation: false }; // an unknown operation is most likely the missing aggregate: say it once
  raw.forEach((stage: unknown, index: number) => {
    const at = `pipeline[${index}]`;
    if (!isObject(stage)) return problems.add(at, 'must be an object {operation, params}');
    for (const k of Object.keys(stage))
      if (k !== 'operation' && k !== 'params')
        problems.add(`${at}.${k}`, 'unknown field (a stage has operation and params)');
    const op = stage.operation;
    if (typeof op !== 'string' || !(OPERATIONS as readonly string[]).includes(op)) {
      seen.unknownOperation = true;
      return problems.add(`${at}.operation`, `must be one of ${OPERATIONS.join(', ')} (got ${JSON.stringify(op)})`);
    }
    const params = stage.params === undefined ? {} : stage.params;
    if (!isObject(params)) return problems.add(`${at}.params`, 'must be an object');
    const s: StageContext = { index, field: `${at}.params`, problems, limits, seen: { ...seen }, steps: [...steps] };
    if (op === 'filter') {
      const r = parseFilter(params, s);
      filter = r.filter;
      stages.push(r.stage);
      seen.filter = true;
    } else if (op === 'aggregate') {
      const r = parseAggregate(params, s);
      aggregate = r.aggregate;
      stages.push(r.stage);
      seen.aggregate = true;
    } else {
      const r = ROW_STAGES[op as keyof typeof ROW_STAGES](params, s);
      if (r) {
        steps.push(r.step);
        stages.push(r.stage);
      }
    }
  });
  if (!seen.aggregate && !seen.unknownOperation)
    problems.add(
      'pipeline',
      'needs an aggregate stage {"operation": "aggregate", "params": {"window": "5m", "functions": ["avg"]}}',
    );
  return { stages, steps, filter, aggregate };
}

/** The system-monitor client's pipeline STATUS report, which a trailing slash brings to the create route. */
export function isStatusReport(body: unknown): boolean {
  return (
    typeof body === 'object' &&
    body !== null &&
    !Array.isArray(body) &&
    !('pipeline' in body) &&
    'pipeline_type' in body &&
    'status' in body
  );
}
