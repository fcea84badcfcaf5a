import { DEFAULT_COLUMN, StageJson } from '../definition.js';
import type { Step } from '../stages.js';
import { allowOnly, columnName, formulaField, Json, requireAggregateBefore, StageContext } from './common.js';

/** `transform`: a formula over the row's columns, added as column `as` (default `value`). */
export function parseTransform(params: Json, s: StageContext): { step: Step; stage: StageJson } | undefined {
  requireAggregateBefore(s, 'transform');
  allowOnly(s, params, 'transform', 'formula', 'as');
  const f = formulaField(params.formula, `${s.field}.formula`, s.problems);
  const as = params.as === undefined ? DEFAULT_COLUMN : columnName(params.as, `${s.field}.as`, s.problems);
  if (!f || !as) return undefined;
  return {
    step: { kind: 'transform', index: s.index, formula: f, as },
    stage: { operation: 'transform', params: { formula: f.text, as } },
  };
}
