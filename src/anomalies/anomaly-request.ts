import { invalidQuery, invalidRequest } from '../common/errors.js';
import { parseDuration } from '../common/time.js';
import {
  AGGREGATIONS,
  Aggregation,
  parseEnum,
  parseGranularity,
  parseRange,
  parseSelector,
  QueryInput,
  QueryLimits,
  SeriesSelector,
  TimeRange,
} from '../query/query-spec.js';
import { ALGORITHMS, Algorithm } from './detectors.js';
import { DIRECTIONS, Direction, MinDeviation } from './episodes.js';

/** A validated POST /metrics/anomalies request. Every bad field is a 400 INVALID_QUERY naming it. */
export interface AnomalyRequest extends SeriesSelector, TimeRange {
  algorithm: Algorithm;
  sensitivity: number;
  direction: Direction;
  minDeviation?: MinDeviation;
  /** Analyse buckets instead of raw points. */
  buckets?: { granularityMs: number; granularity: string; aggregation: Aggregation };
  seed: number;
  /** Trailing window as a duration (converted to points once the step is known). */
  windowMs?: number;
  trees?: number;
  subsample?: number;
}

export const DEFAULT_SENSITIVITY = 0.5;
export const DEFAULT_SEED = 42;

const KNOWN = new Set([
  'metric',
  'source',
  'tags',
  'from',
  'to',
  'algorithm',
  'sensitivity',
  'granularity',
  'aggregation',
  'direction',
  'min_deviation',
  'seed',
  'window',
  'trees',
  'subsample',
]);

function integer(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw invalidQuery(name, `${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(v)})`);
  return v;
}

export function parseAnomalyRequest(body: unknown, now: number, limits: QueryLimits): AnomalyRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalidRequest('Request body must be a JSON object {metric, source, from, to, algorithm, sensitivity, ...}');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !KNOWN.has(k));
  if (unknown.length)
    throw invalidQuery(unknown[0], `unknown parameter ${unknown[0]}; expected some of ${[...KNOWN].join(', ')}`);
  const selector = parseSelector(b as QueryInput);
  const range = parseRange(b, now);
  const algorithm = parseEnum(b.algorithm, ALGORITHMS, 'algorithm', 'auto');
  let sensitivity = DEFAULT_SENSITIVITY;
  if (b.sensitivity !== undefined && b.sensitivity !== null) {
    if (typeof b.sensitivity !== 'number' || !(b.sensitivity > 0 && b.sensitivity <= 1)) {
      throw invalidQuery(
        'sensitivity',
        `sensitivity must be a number with 0 < sensitivity <= 1, higher finds more (got ${JSON.stringify(b.sensitivity)})`,
      );
    }
    sensitivity = b.sensitivity;
  }
  const direction = parseEnum(b.direction, DIRECTIONS, 'direction', 'both');
  const minDeviation = parseMinDeviation(b.min_deviation);
  let buckets: AnomalyRequest['buckets'];
  if (b.granularity !== undefined && b.granularity !== null && b.granularity !== '') {
    const g = parseGranularity(b.granularity, range, limits);
    buckets = {
      granularityMs: g.ms,
      granularity: g.label,
      aggregation: parseEnum(b.aggregation, AGGREGATIONS, 'aggregation', 'avg'),
    };
  } else if (b.aggregation !== undefined && b.aggregation !== null && b.aggregation !== '') {
    throw invalidQuery(
      'aggregation',
      'aggregation applies to buckets: give a granularity too (for example "granularity": "5m")',
    );
  }
  let windowMs: number | undefined;
  if (b.window !== undefined && b.window !== null) {
    windowMs = typeof b.window === 'string' ? parseDuration(b.window) : NaN;
    if (!Number.isFinite(windowMs))
      throw invalidQuery('window', `window must be a duration such as 30m, 6h or 1d (got ${JSON.stringify(b.window)})`);
  }
  return {
    ...selector,
    ...range,
    algorithm,
    sensitivity,
    direction,
    minDeviation,
    buckets,
    seed: integer(b.seed, 'seed', 0, 2 ** 32 - 1) ?? DEFAULT_SEED,
    windowMs,
    trees: integer(b.trees, 'trees', 1, 1000),
    subsample: integer(b.subsample, 'subsample', 16, 65_536),
  };
}

/** `12.5` (absolute, in the metric's unit) or `"10%"` (relative to the expected value). */
export function parseMinDeviation(v: unknown): MinDeviation | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return { kind: 'absolute', value: v };
  if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
    if (m) return { kind: 'relative', value: Number(m[1]) / 100 };
    const n = Number(v);
    if (v.trim() !== '' && Number.isFinite(n) && n >= 0) return { kind: 'absolute', value: n };
  }
  throw invalidQuery(
    'min_deviation',
    `min_deviation must be a number >= 0 (absolute, in the metric's unit) or a percentage such as "10%" of the expected value (got ${JSON.stringify(v)})`,
  );
}
