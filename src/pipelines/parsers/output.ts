import { DefinitionLimits, DESTINATIONS, OutputJson } from '../definition.js';
import type { Step } from '../stages.js';
import { isCleanText, isObject, Json, METRIC_NAME, Problems, RESERVED, TAG_KEY } from './common.js';

/** `output` as sent: an object, or absent/null for `{destination: none}`; undefined when it is neither (a problem is reported). */
export function outputObject(raw: unknown, problems: Problems): Json | undefined {
  const out = isObject(raw) ? raw : raw === undefined || raw === null ? { destination: 'none' } : undefined;
  if (!out) problems.add('output', 'must be an object {destination: none | metric | webhook, ...}');
  return out;
}

/** The column an `output: metric` names, if it names one (it counts as a reference when inferring metrics). */
export const outputColumnRef = (out: Json | undefined): string | undefined =>
  out && out.destination === 'metric' && typeof out.column === 'string' ? out.column : undefined;

export interface OutputContext {
  problems: Problems;
  limits: DefinitionLimits;
  steps: readonly Step[];
  /** The pipeline's columns when known at save (null: found when it runs). */
  columns: string[] | null;
  /** The aggregate's group keys: they become tags of derived series. */
  groupBy: readonly string[] | undefined;
}

/**
 * `output`: none (rows only in the reply); metric (a derived series: metric, column defaulting to
 * the last transform's or the only column, source, static tags, unit); webhook (url, secret).
 * `secret` is as sent: a string, null (unsigned) or undefined (not given).
 */
export function parseOutput(
  out: Json | undefined,
  c: OutputContext,
): { output: OutputJson; secret: string | null | undefined } {
  const { problems, limits, columns } = c;
  let output: OutputJson = { destination: 'none' };
  let secret: string | null | undefined;
  if (!out) return { output, secret };
  const dest = out.destination ?? 'none';
  if (typeof dest !== 'string' || !(DESTINATIONS as readonly string[]).includes(dest)) {
    problems.add('output.destination', `must be one of ${DESTINATIONS.join(', ')} (got ${JSON.stringify(dest)})`);
    return { output, secret };
  }
  const allow = (...keys: string[]) => {
    for (const k of Object.keys(out))
      if (k !== 'destination' && !keys.includes(k))
        problems.add(
          `output.${k}`,
          `unknown field for destination ${dest} (expected ${keys.join(', ') || 'nothing else'})`,
        );
  };
  if (dest === 'none') {
    allow();
  } else if (dest === 'webhook') {
    allow('url', 'secret');
    if (typeof out.url !== 'string' || out.url === '')
      problems.add('output.url', 'is required for destination webhook');
    if (
      out.secret !== undefined &&
      out.secret !== null &&
      (typeof out.secret !== 'string' || out.secret.length < 16 || out.secret.length > 256 || !isCleanText(out.secret))
    ) {
      problems.add('output.secret', 'must be 16 to 256 characters (or null for unsigned deliveries)');
    }
    secret = out.secret as string | null | undefined;
    output = { destination: 'webhook', url: typeof out.url === 'string' ? out.url : '' };
  } else {
    allow('metric', 'column', 'source', 'tags', 'unit');
    const metric = typeof out.metric === 'string' ? out.metric : '';
    if (!METRIC_NAME.test(metric) || metric.startsWith('__') || metric.length > limits.maxNameLength) {
      problems.add(
        'output.metric',
        'is required for destination metric: a metric name (a letter or _, then letters, digits, _ . : -)',
      );
    }
    let column = outputColumnRef(out);
    if (out.column !== undefined && column === undefined) problems.add('output.column', 'must be a column name');
    const lastTransform = [...c.steps].reverse().find((s) => s.kind === 'transform') as { as: string } | undefined;
    if (column === undefined && columns) {
      column =
        lastTransform && columns.includes(lastTransform.as)
          ? lastTransform.as
          : columns.length === 1
            ? columns[0]
            : undefined;
      if (column === undefined)
        problems.add('output.column', `is required: the pipeline produces several columns (${columns.join(', ')})`);
    } else if (column === undefined) {
      problems.add('output.column', 'is required when the filter names no metrics and no stage names a column');
    } else if (columns && !columns.includes(column)) {
      problems.add(
        'output.column',
        `names column ${column}, which the pipeline does not produce (it produces ${columns.join(', ') || 'nothing'})`,
      );
    }
    let source: string | null = null;
    if (out.source !== undefined && out.source !== null) {
      if (
        typeof out.source !== 'string' ||
        out.source === '' ||
        out.source.length > limits.maxNameLength ||
        !isCleanText(out.source)
      )
        problems.add('output.source', `must be 1 to ${limits.maxNameLength} characters`);
      else source = out.source;
    }
    const tags = outputTags(out.tags, c);
    let unit: string | null = null;
    if (out.unit !== undefined && out.unit !== null) {
      if (typeof out.unit !== 'string' || out.unit.length > 64 || !isCleanText(out.unit))
        problems.add('output.unit', 'must be at most 64 characters');
      else unit = out.unit;
    }
    output = { destination: 'metric', metric, column: column ?? '', source, tags, unit };
  }
  return { output, secret };
}

/** The static tags of derived series: valid keys, not also group keys, within INGEST_MAX_TAGS with the group. */
function outputTags(raw: unknown, c: OutputContext): Record<string, string> {
  const { problems, limits } = c;
  const tags: Record<string, string> = {};
  if (raw === undefined || raw === null) return tags;
  if (!isObject(raw)) {
    problems.add('output.tags', 'must be an object of tag key → value');
    return tags;
  }
  for (const [k, v] of Object.entries(raw)) {
    if (!TAG_KEY.test(k) || k.startsWith('__') || RESERVED.has(k) || k.length > limits.maxTagKeyLength)
      problems.add(`output.tags.${k}`, 'is not a valid tag key');
    else if (typeof v !== 'string' || v === '' || v.length > limits.maxTagValueLength || !isCleanText(v))
      problems.add(`output.tags.${k}`, `must be 1 to ${limits.maxTagValueLength} characters`);
    else if (c.groupBy?.includes(k))
      problems.add(`output.tags.${k}`, 'is also a group_by key: the group gives it a value');
    else tags[k] = v;
  }
  if (Object.keys(tags).length + (c.groupBy?.length ?? 0) > limits.maxTags)
    problems.add('output.tags', `derived series would have more than ${limits.maxTags} tags (INGEST_MAX_TAGS)`);
  return tags;
}
