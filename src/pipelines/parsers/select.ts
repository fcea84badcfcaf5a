import type { StageJson } from '../definition.js';
import type { Step } from '../stages.js';
import { allowOnly, columnName, Json, requireAggregateBefore, StageContext } from './common.js';

/** `select`: `columns: [...]`, the columns kept, in this order. */
export function parseSelect(params: Json, s: StageContext): { step: Step; stage: StageJson } | undefined {
  requireAggregateBefore(s, 'select');
  allowOnly(s, params, 'select', 'columns');
  const cols = params.columns;
  if (!Array.isArray(cols) || cols.length === 0) {
    s.problems.add(`${s.field}.columns`, 'is required: a non-empty list of column names');
    return undefined;
  }
  const names = cols.map((c, i) => columnName(c, `${s.field}.columns[${i}]`, s.problems));
  if (names.some((n) => n === undefined)) return undefined;
  if (new Set(names).size !== names.length) {
    s.problems.add(`${s.field}.columns`, 'names a column twice');
    return undefined;
  }
  return {
    step: { kind: 'select', index: s.index, columns: names as string[] },
    stage: { operation: 'select', params: { columns: names } },
  };
}
