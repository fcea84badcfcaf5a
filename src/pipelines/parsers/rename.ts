import type { StageJson } from '../definition.js';
import type { Step } from '../stages.js';
import { allowOnly, columnName, isObject, Json, requireAggregateBefore, StageContext } from './common.js';

/** `rename`: `columns: {old: new}`. */
export function parseRename(params: Json, s: StageContext): { step: Step; stage: StageJson } | undefined {
  requireAggregateBefore(s, 'rename');
  allowOnly(s, params, 'rename', 'columns');
  if (!isObject(params.columns) || Object.keys(params.columns).length === 0) {
    s.problems.add(`${s.field}.columns`, 'is required: an object {old_name: new_name}');
    return undefined;
  }
  const pairs: Array<[string, string]> = [];
  for (const [from, to] of Object.entries(params.columns)) {
    const t = columnName(to, `${s.field}.columns.${from}`, s.problems);
    if (t) pairs.push([from, t]);
  }
  return {
    step: { kind: 'rename', index: s.index, pairs },
    stage: { operation: 'rename', params: { columns: Object.fromEntries(pairs) } },
  };
}
