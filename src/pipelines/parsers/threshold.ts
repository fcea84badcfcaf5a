import type { StageJson } from '../definition.js';
import { COMPARISONS, Comparison, Step } from '../stages.js';
import { allowOnly, columnName, formulaField, Json, requireAggregateBefore, StageContext } from './common.js';

/** `threshold`: keeps the rows where `column op value` holds (column default: the last transform's), or where `condition` is true. */
export function parseThreshold(params: Json, s: StageContext): { step: Step; stage: StageJson } | undefined {
  requireAggregateBefore(s, 'threshold');
  allowOnly(s, params, 'threshold', 'column', 'op', 'value', 'condition');
  const p = s.field;
  if (params.condition !== undefined) {
    if (params.column !== undefined || params.op !== undefined || params.value !== undefined) {
      s.problems.add(`${p}.condition`, 'give either condition, or column, op and value');
      return undefined;
    }
    const f = formulaField(params.condition, `${p}.condition`, s.problems);
    return f
      ? {
          step: { kind: 'threshold', index: s.index, condition: f },
          stage: { operation: 'threshold', params: { condition: f.text } },
        }
      : undefined;
  }
  const lastTransform = [...s.steps].reverse().find((x) => x.kind === 'transform') as { as: string } | undefined;
  const column = params.column === undefined ? lastTransform?.as : columnName(params.column, `${p}.column`, s.problems);
  if (params.column === undefined && !column)
    s.problems.add(`${p}.column`, 'is required (no transform before it says which column)');
  const opv = params.op;
  const validOp = typeof opv === 'string' && (COMPARISONS as readonly string[]).includes(opv);
  if (!validOp) s.problems.add(`${p}.op`, `must be one of ${COMPARISONS.join(' ')}`);
  const validValue = typeof params.value === 'number' && Number.isFinite(params.value);
  if (!validValue) s.problems.add(`${p}.value`, 'must be a number');
  if (!column || !validOp || !validValue) return undefined;
  const value = params.value as number;
  return {
    step: { kind: 'threshold', index: s.index, column, op: opv as Comparison, value },
    stage: { operation: 'threshold', params: { column, op: opv, value } },
  };
}
