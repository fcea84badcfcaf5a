import type { z } from 'zod';
import type { FieldProblem } from '../common/errors.js';

/** `['rate_limits', 'ingest']` → `rate_limits.ingest`; `['scopes', 0]` → `scopes[0]`; `[]` → `body`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out || 'body';
}

/**
 * A zod error as the envelope's field problems: one per field (the first message), unknown keys
 * of a strict object one each with `unknownKey`'s message, in the order of `order` (top-level
 * fields), so that the 400 names fields as a hand-written validator would. `extra`: problems found
 * outside the schema (a rule that depends on the time of the request), merged in.
 */
export function zodProblems(
  error: z.ZodError | undefined,
  opts: { unknownKey: (key: string) => string; order?: readonly string[]; extra?: FieldProblem[] },
): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Set<string>();
  const add = (field: string, message: string) => {
    if (seen.has(field)) return;
    seen.add(field);
    out.push({ field, message });
  };
  for (const issue of error?.issues ?? []) {
    if (issue.code === 'unrecognized_keys')
      for (const k of issue.keys) add(fieldPath([...issue.path, k]), opts.unknownKey(k));
    else add(fieldPath(issue.path), issue.message);
  }
  for (const p of opts.extra ?? []) add(p.field, p.message);
  if (!opts.order) return out;
  const rank = (f: string) => {
    const top = /^[^.[]*/.exec(f)![0];
    const i = opts.order!.indexOf(top);
    return i === -1 ? -1 : i;
  };
  return out
    .map((p, i) => ({ p, i }))
    .sort((a, b) => rank(a.p.field) - rank(b.p.field) || a.i - b.i)
    .map((x) => x.p);
}
