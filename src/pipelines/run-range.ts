import { fieldErrors, invalidQuery, invalidRequest } from '../common/errors.js';
import { formatDuration, toIso } from '../common/time.js';
import { parseRange } from '../query/query-spec.js';
import type { PipelinePlan } from './definition.js';
import { countWindows, lastWindow } from './windows.js';

/** from/to of a run or dry-run as sent, not yet parsed. */
export interface RangeInput {
  from?: unknown;
  to?: unknown;
}

/** from/to of a run or dry-run: in the query string, or a JSON body {from, to}. */
export function rangeInput(query: Record<string, unknown>, body: unknown): RangeInput {
  if (body === undefined || body === null || body === '') return { from: query.from, to: query.to };
  if (typeof body !== 'object' || Array.isArray(body))
    throw invalidRequest('The body of a run must be a JSON object {from?, to?}, or empty');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => k !== 'from' && k !== 'to');
  if (unknown.length)
    throw fieldErrors(unknown.map((k) => ({ field: k, message: 'unknown field (a run takes from and to)' })));
  return { from: query.from ?? b.from, to: query.to ?? b.to };
}

/** The range a run covers: as given, else the last window that ended; at most `maxWindows` windows (PIPELINE_MAX_WINDOWS). */
export function resolveRange(
  plan: PipelinePlan,
  input: RangeInput,
  now: number,
  maxWindows: number,
): { from: number; to: number } {
  const given = (v: unknown) => v !== undefined && v !== '';
  const range =
    given(input.from) || given(input.to) ? parseRange(input, now) : lastWindow(now, plan.stepMs, plan.windowMs);
  const n = countWindows(range.from, range.to, plan.stepMs, now);
  if (n > maxWindows) {
    throw invalidQuery(
      'from',
      `${toIso(range.from)} to ${toIso(range.to)} holds ${n} windows of ${formatDuration(plan.stepMs)}, more than ${maxWindows} (PIPELINE_MAX_WINDOWS); narrow the range`,
      {
        windows: n,
        max_windows: maxWindows,
      },
    );
  }
  return range;
}
