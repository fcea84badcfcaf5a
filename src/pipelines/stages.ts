import type { FieldProblem } from '../common/errors.js';
import { compileFormula, Compiled, FormulaError, ParsedFormula, truthy, Value } from './formula.js';

/**
 * What happens to aggregated rows in Node: transform (a formula adds a column), rename, threshold
 * (keeps rows that pass), select (keeps columns). Pure. A row is one window of one group; its values
 * sit in an array whose layout (`columns`) is fixed when the steps are bound to the aggregate
 * columns, so no row is ever indexed by user text.
 */

export type Group = Readonly<Record<string, string | null>>;

export interface Row {
  /** Window start, epoch ms (the window is [start, start + window)). */
  start: number;
  /** The group_by values (null where a series lacks the tag); a null-prototype object. */
  group: Group;
  /** Stable key of the group, for ordering and joins. */
  groupKey: string;
  values: Value[];
}

export const COMPARISONS = ['>', '>=', '<', '<=', '==', '!='] as const;
export type Comparison = (typeof COMPARISONS)[number];

export type Step =
  | { kind: 'transform'; index: number; formula: ParsedFormula; as: string }
  | { kind: 'rename'; index: number; pairs: Array<[string, string]> }
  | { kind: 'threshold'; index: number; column?: string; op?: Comparison; value?: number; condition?: ParsedFormula }
  | { kind: 'select'; index: number; columns: string[] };

export interface BoundSteps {
  /** Column names after the last step. */
  columns: string[];
  apply(rows: Row[]): Row[];
}

/** Names a step reads, with the field that names each (for inference and error messages). */
export function references(step: Step): Array<{ name: string; field: string }> {
  const p = `pipeline[${step.index}].params`;
  switch (step.kind) {
    case 'transform':
      return step.formula.columns.map((name) => ({ name, field: `${p}.formula` }));
    case 'rename':
      return step.pairs.map(([from]) => ({ name: from, field: `${p}.columns.${from}` }));
    case 'threshold':
      return step.condition
        ? step.condition.columns.map((name) => ({ name, field: `${p}.condition` }))
        : step.column
          ? [{ name: step.column, field: `${p}.column` }]
          : [];
    case 'select':
      return step.columns.map((name, i) => ({ name, field: `${p}.columns[${i}]` }));
  }
}

/** Names a step makes available to the steps after it. */
export function defines(step: Step): string[] {
  return step.kind === 'transform' ? [step.as] : step.kind === 'rename' ? step.pairs.map(([, to]) => to) : [];
}

const compare = (op: Comparison, x: number, y: number): boolean =>
  op === '>'
    ? x > y
    : op === '>='
      ? x >= y
      : op === '<'
        ? x < y
        : op === '<='
          ? x <= y
          : op === '=='
            ? x === y
            : x !== y;

/**
 * Binds steps to the aggregate columns: checks every reference against the columns available at
 * that point and compiles formulas. Problems name the stage's field; with problems, `apply` is not
 * meant to be called.
 */
export function bindSteps(
  steps: Step[],
  aggregateColumns: readonly string[],
): BoundSteps & { problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  let columns = [...aggregateColumns];
  const ops: Array<(rows: Row[]) => Row[]> = [];
  const slotsOf = () => new Map(columns.map((c, i) => [c, i]));
  const missing = (name: string, field: string) =>
    problems.push({
      field,
      message: `names column ${name}, which no earlier stage produces (available: ${columns.join(', ') || 'none'})`,
    });

  for (const step of steps) {
    const p = `pipeline[${step.index}].params`;
    const slots = slotsOf();
    let ok = true;
    for (const r of references(step)) {
      if (!slots.has(r.name)) {
        missing(r.name, r.field);
        ok = false;
      }
    }
    switch (step.kind) {
      case 'transform': {
        if (slots.has(step.as)) {
          problems.push({ field: `${p}.as`, message: `column ${step.as} already exists; choose another name` });
          ok = false;
        }
        let f: Compiled = () => null;
        if (ok) {
          try {
            f = compileFormula(step.formula, slots);
          } catch (err) {
            if (!(err instanceof FormulaError)) throw err;
            problems.push({ field: `${p}.formula`, message: err.message });
          }
        }
        ops.push((rows) => {
          for (const r of rows) r.values.push(f(r.values));
          return rows;
        });
        columns = [...columns, step.as];
        break;
      }
      case 'rename': {
        const next = [...columns];
        for (const [from, to] of step.pairs) {
          const i = next.indexOf(from);
          if (i >= 0) next[i] = to;
        }
        const seen = new Set<string>();
        for (const c of next) {
          if (seen.has(c)) problems.push({ field: `${p}.columns`, message: `renaming gives two columns named ${c}` });
          seen.add(c);
        }
        columns = next;
        break;
      }
      case 'threshold': {
        if (!ok) break;
        if (step.condition) {
          let f: Compiled = () => null;
          try {
            f = compileFormula(step.condition, slots);
          } catch (err) {
            if (!(err instanceof FormulaError)) throw err;
            problems.push({ field: `${p}.condition`, message: err.message });
          }
          ops.push((rows) => rows.filter((r) => truthy(f(r.values))));
        } else {
          const i = slots.get(step.column!)!;
          const op = step.op!,
            value = step.value!;
          ops.push((rows) => rows.filter((r) => r.values[i] !== null && compare(op, r.values[i]!, value)));
        }
        break;
      }
      case 'select': {
        if (!ok) break;
        const idx = step.columns.map((c) => slots.get(c)!);
        ops.push((rows) => {
          for (const r of rows) r.values = idx.map((i) => r.values[i]);
          return rows;
        });
        columns = [...step.columns];
        break;
      }
    }
  }
  return {
    columns,
    problems,
    apply(rows: Row[]) {
      let out = rows;
      for (const op of ops) out = op(out);
      return out;
    },
  };
}
