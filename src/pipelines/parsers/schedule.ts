import { DAY, formatDuration } from '../../common/time.js';
import { DEFAULT_DELAY, MAX_WINDOW, parseWindowDuration, ScheduleJson } from '../definition.js';
import { isObject, Problems } from './common.js';
import type { AggregateSpec } from './aggregate.js';

const MAX_DELAY = DAY;
/** Overlapping windows read each point window/every times; beyond this it is a mistake. */
const MAX_OVERLAP = 60;

/**
 * `schedule`: `{every, delay?}`, or absent/null to run only on demand. Window ends step by `every`
 * (without a schedule, by the window: tumbling windows); `delay` waits for late points (default 30s).
 */
export function parseSchedule(
  raw: unknown,
  aggregate: AggregateSpec | undefined,
  problems: Problems,
): { schedule: ScheduleJson | null; stepMs: number; delayMs: number } {
  let schedule: ScheduleJson | null = null;
  let stepMs = aggregate?.windowMs ?? NaN;
  let delayMs = parseWindowDuration(DEFAULT_DELAY);
  if (raw === undefined || raw === null) return { schedule, stepMs, delayMs };
  if (!isObject(raw)) {
    problems.add('schedule', 'must be an object {every, delay?}, or null to run only on demand');
    return { schedule, stepMs, delayMs };
  }
  for (const k of Object.keys(raw))
    if (k !== 'every' && k !== 'delay') problems.add(`schedule.${k}`, 'unknown field (expected every, delay)');
  const every = parseWindowDuration(raw.every);
  if (!Number.isFinite(every))
    problems.add('schedule.every', `is required: a duration such as 1m or 5m (got ${JSON.stringify(raw.every)})`);
  else if (every > MAX_WINDOW) problems.add('schedule.every', `must be at most ${formatDuration(MAX_WINDOW)}`);
  else if (aggregate && Number.isFinite(aggregate.windowMs) && aggregate.windowMs / every > MAX_OVERLAP) {
    problems.add(
      'schedule.every',
      `a ${aggregate.window} window every ${raw.every} reads each point ${Math.round(aggregate.windowMs / every)} times; at most ${MAX_OVERLAP}`,
    );
  }
  if (raw.delay !== undefined) {
    delayMs = parseWindowDuration(raw.delay, true);
    if (!Number.isFinite(delayMs) || delayMs > MAX_DELAY)
      problems.add(
        'schedule.delay',
        `must be a duration from 0s to ${formatDuration(MAX_DELAY)} (got ${JSON.stringify(raw.delay)})`,
      );
  }
  stepMs = every;
  schedule = {
    every: typeof raw.every === 'string' ? raw.every.trim() : '',
    delay: typeof raw.delay === 'string' ? raw.delay.trim() : DEFAULT_DELAY,
  };
  return { schedule, stepMs, delayMs };
}
