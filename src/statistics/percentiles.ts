import { invalidQuery } from '../common/errors.js';

/** The reference's percentiles, always reported. */
export const STANDARD_PERCENTILES = [50, 90, 95, 99];
const MAX_EXTRA = 20;

/**
 * `percentiles=75,99.9` (comma-separated, repeatable): more percentiles on top of p50/p90/p95/p99,
 * each from 0 to 100. Returns the full sorted, de-duplicated list.
 */
export function parsePercentiles(v: unknown): number[] {
  const out = new Set(STANDARD_PERCENTILES);
  if (v === undefined || v === '') return [...out];
  const items = (Array.isArray(v) ? v : [v]).flatMap((x) => (typeof x === 'string' ? x.split(',') : [x]));
  if (items.length > MAX_EXTRA) throw invalidQuery('percentiles', `at most ${MAX_EXTRA} extra percentiles`);
  for (const item of items) {
    const s = typeof item === 'string' ? item.trim().replace(/^p/i, '') : '';
    const p = /^\d+(\.\d+)?$/.test(s) ? Number(s) : NaN;
    if (!(p >= 0 && p <= 100))
      throw invalidQuery(
        'percentiles',
        `percentiles must be numbers from 0 to 100 such as 75 or 99.9 (got ${JSON.stringify(item)})`,
      );
    out.add(p);
  }
  return [...out].sort((a, b) => a - b);
}

/** `p99.9` for 99.9: the key in the reply. */
export const percentileKey = (p: number) => `p${p}`;
