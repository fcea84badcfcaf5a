import { isCleanText, isObject, Json, Problems } from '../../common/input.js';
import type { TagFilter } from '../../query/query-spec.js';
import type { DefinitionLimits } from '../definition.js';
import { FormulaError, parseFormula, ParsedFormula } from '../formula.js';
import type { Step } from '../stages.js';

/**
 * What every stage parser is given. Parsers are pure: they read `params`, report problems naming
 * `field` (`pipeline[1].params`) and sub-fields, and return what the stage contributes.
 */
export interface StageContext {
  /** The stage's position in `pipeline`. */
  index: number;
  /** `pipeline[<index>].params`, the prefix of every field a problem names. */
  field: string;
  problems: Problems;
  limits: DefinitionLimits;
  /** What the stages before this one were: the order rules depend on it. */
  seen: { filter: boolean; aggregate: boolean; unknownOperation: boolean };
  /** Row steps parsed so far (a threshold without a column uses the last transform's). */
  steps: readonly Step[];
}

export { isCleanText, isObject, Problems };
export type { Json };

export const MAX_LIST = 100;
/** As ingest accepts them (src/ingestion/decode.ts): derived series must be storable like any other. */
export const METRIC_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
export const TAG_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
export const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const RESERVED = new Set(['constructor', 'prototype', '__proto__']);

/** Reports every key of `params` outside `keys` as unknown for this stage. */
export function allowOnly(s: StageContext, params: Json, operation: string, ...keys: string[]): void {
  for (const k of Object.keys(params))
    if (!keys.includes(k))
      s.problems.add(`${s.field}.${k}`, `unknown field for ${operation} (expected ${keys.join(', ')})`);
}

/** Row stages work on aggregated rows: they must come after the aggregate stage. */
export function requireAggregateBefore(s: StageContext, operation: string): void {
  if (!s.seen.aggregate && !s.seen.unknownOperation)
    s.problems.add(
      `pipeline[${s.index}].operation`,
      `${operation} works on aggregated rows and must come after the aggregate stage`,
    );
}

/** A column a stage defines or names: a letter or _, then letters, digits or _. */
export function columnName(v: unknown, field: string, problems: Problems): string | undefined {
  if (typeof v !== 'string' || !COLUMN_NAME.test(v) || v.length > 200 || RESERVED.has(v) || v.startsWith('__')) {
    problems.add(field, 'must be a column name: a letter or _, then letters, digits or _');
    return undefined;
  }
  return v;
}

/** `metrics` or its singular `metric` (not both): a string or a list of distinct valid strings. */
export function stringList(
  params: Json,
  keys: [string, string],
  s: StageContext,
  valid: (v: string) => boolean,
  what: string,
): string[] | undefined {
  const given = keys.filter((k) => params[k] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length === 2) {
    s.problems.add(`${s.field}.${keys[1]}`, `give ${keys[0]} or ${keys[1]}, not both`);
    return undefined;
  }
  const field = `${s.field}.${given[0]}`;
  const raw = params[given[0]];
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.length > MAX_LIST) {
    s.problems.add(field, `must be a string or a list of at most ${MAX_LIST} ${what}`);
    return undefined;
  }
  const out: string[] = [];
  list.forEach((v, i) => {
    if (typeof v !== 'string' || !valid(v)) s.problems.add(`${field}[${i}]`, `is not one of the valid ${what}`);
    else if (!out.includes(v)) out.push(v);
  });
  return out;
}

/** `{host: "a", region: ["eu", "us"]}`: different keys must all match, a list means any of its values. */
export function tagFilters(v: unknown, field: string, problems: Problems): TagFilter[] {
  if (v === undefined || v === null) return [];
  if (!isObject(v)) {
    problems.add(field, 'must be an object {key: value or [values]}');
    return [];
  }
  const out: TagFilter[] = [];
  for (const [key, val] of Object.entries(v)) {
    const values = typeof val === 'string' ? [val] : val;
    if (!TAG_KEY.test(key) || RESERVED.has(key)) problems.add(`${field}.${key}`, 'is not a valid tag key');
    else if (
      !Array.isArray(values) ||
      values.length === 0 ||
      values.length > MAX_LIST ||
      !values.every((x) => typeof x === 'string' && x.length > 0 && isCleanText(x))
    ) {
      problems.add(`${field}.${key}`, 'must be a non-empty string or a list of them');
    } else out.push({ key, values: [...new Set(values as string[])] });
  }
  return out;
}

/** A formula field parsed (never evaluated here), or a problem naming the field. */
export function formulaField(v: unknown, field: string, problems: Problems): ParsedFormula | undefined {
  try {
    return parseFormula(v);
  } catch (err) {
    if (!(err instanceof FormulaError)) throw err;
    problems.add(field, err.message);
    return undefined;
  }
}
