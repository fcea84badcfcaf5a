import { formatDuration } from '../../common/time.js';
import { AGG_FUNCTIONS, AggFunction, MAX_WINDOW, parseWindowDuration, StageJson } from '../definition.js';
import { allowOnly, Json, RESERVED, StageContext, TAG_KEY } from './common.js';

const MAX_GROUP_BY = 10;

/** The window aggregate: its window as written and in ms (NaN when invalid), functions and group keys. */
export interface AggregateSpec {
  window: string;
  windowMs: number;
  functions: AggFunction[];
  groupBy: string[];
}

/** `aggregate`: window (up to 7d), functions, group_by (tag keys, or source). Exactly one. */
export function parseAggregate(params: Json, s: StageContext): { aggregate: AggregateSpec; stage: StageJson } {
  allowOnly(s, params, 'aggregate', 'window', 'functions', 'group_by');
  const p = s.field;
  if (s.seen.aggregate) s.problems.add(`pipeline[${s.index}].operation`, 'only one aggregate stage is allowed');
  const windowMs = parseWindowDuration(params.window);
  if (!Number.isFinite(windowMs))
    s.problems.add(
      `${p}.window`,
      `is required: a duration such as 30s, 5m, 1h or 1d (got ${JSON.stringify(params.window)})`,
    );
  else if (windowMs > MAX_WINDOW) s.problems.add(`${p}.window`, `must be at most ${formatDuration(MAX_WINDOW)}`);
  const fnsRaw = typeof params.functions === 'string' ? [params.functions] : params.functions;
  const functions: AggFunction[] = [];
  if (!Array.isArray(fnsRaw) || fnsRaw.length === 0)
    s.problems.add(`${p}.functions`, `is required: a non-empty list among ${AGG_FUNCTIONS.join(', ')}`);
  else
    fnsRaw.forEach((f, i) => {
      if (typeof f !== 'string' || !(AGG_FUNCTIONS as readonly string[]).includes(f))
        s.problems.add(
          `${p}.functions[${i}]`,
          `unknown function ${JSON.stringify(f)}; allowed: ${AGG_FUNCTIONS.join(', ')}`,
        );
      else if (!functions.includes(f as AggFunction)) functions.push(f as AggFunction);
    });
  const gbRaw =
    params.group_by === undefined ? [] : typeof params.group_by === 'string' ? [params.group_by] : params.group_by;
  const groupBy: string[] = [];
  if (!Array.isArray(gbRaw)) s.problems.add(`${p}.group_by`, 'must be a list of tag keys (or source)');
  else if (gbRaw.length > MAX_GROUP_BY) s.problems.add(`${p}.group_by`, `at most ${MAX_GROUP_BY} keys`);
  else
    gbRaw.forEach((k, i) => {
      if (
        typeof k !== 'string' ||
        !TAG_KEY.test(k) ||
        k.length > s.limits.maxTagKeyLength ||
        RESERVED.has(k) ||
        k.startsWith('__')
      ) {
        s.problems.add(`${p}.group_by[${i}]`, 'must be a tag key (letters, digits, _ . -) or source');
      } else if (!groupBy.includes(k)) groupBy.push(k);
    });
  const aggregate = {
    window: typeof params.window === 'string' ? params.window.trim() : '',
    windowMs,
    functions,
    groupBy,
  };
  const normal: Json = { window: aggregate.window, functions };
  if (groupBy.length) normal.group_by = groupBy;
  return { aggregate, stage: { operation: 'aggregate', params: normal } };
}
