import { fieldErrors } from '../common/errors.js';
import { isCleanText } from '../common/input.js';
import { parseTags, TagFilter } from '../query/query-spec.js';

/**
 * Which committed points a stream wants: metric names, sources and tags. Every list is "any of";
 * different parts must all match (as in the query API: `tags` keys AND, values of one key OR).
 * An absent part matches everything. Pure.
 */
export interface StreamFilter {
  metrics: readonly string[] | null;
  sources: readonly string[] | null;
  tags: readonly TagFilter[];
}

/** What a filter looks at: the identity of a series. */
export interface SeriesIdentity {
  readonly metric: string;
  readonly source: string;
  readonly tags: Readonly<Record<string, string>>;
}

/** Values per list (metrics, sources, values of one tag). */
export const MAX_FILTER_VALUES = 1_000;
/**
 * (metric, source) pairs one connection watches, over all its subscriptions ("any" counts as
 * one): each is an entry in the subscription index, so this bounds the index at
 * STREAM_MAX_CONNECTIONS × 1,000 entries.
 */
export const MAX_FILTER_PAIRS = 1_000;
/** Values of all tag keys of one subscription together. */
const MAX_TAG_VALUES = 1_000;
const MAX_TAG_KEYS = 64;
const MAX_NAME = 1_024;

export interface FilterInput {
  metrics?: unknown;
  sources?: unknown;
  tags?: unknown;
}

/** `["a", "b"]`, `"a"` or `"a,b"` (the query-string form) → a list; empty → null (any). */
function list(v: unknown, field: string, code: 'INVALID_REQUEST' | 'INVALID_QUERY'): string[] | null {
  if (v === undefined || v === null || v === '') return null;
  const raw = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : undefined;
  if (!raw) throw fieldErrors([{ field, message: 'must be an array of strings (or a comma-separated string)' }], code);
  const out = new Set<string>();
  for (const [i, item] of raw.entries()) {
    if (typeof item !== 'string') throw fieldErrors([{ field: `${field}[${i}]`, message: 'must be a string' }], code);
    const s = typeof v === 'string' ? item.trim() : item;
    if (!s) continue;
    if (s.length > MAX_NAME || !isCleanText(s))
      throw fieldErrors(
        [{ field: `${field}[${i}]`, message: `must be 1 to ${MAX_NAME} characters of valid Unicode` }],
        code,
      );
    out.add(s);
  }
  if (out.size > MAX_FILTER_VALUES)
    throw fieldErrors([{ field, message: `lists more than ${MAX_FILTER_VALUES} values` }], code);
  return out.size ? [...out] : null;
}

/**
 * A filter from a WebSocket subscribe message (`code` INVALID_REQUEST) or SSE query parameters
 * (`INVALID_QUERY`); a 400 naming the field otherwise.
 */
export function parseFilter(
  input: FilterInput,
  code: 'INVALID_REQUEST' | 'INVALID_QUERY' = 'INVALID_REQUEST',
): StreamFilter {
  const metrics = list(input.metrics, 'metrics', code);
  const sources = list(input.sources, 'sources', code);
  if (filterPairs({ metrics, sources }) > MAX_FILTER_PAIRS) {
    throw fieldErrors(
      [{ field: 'sources', message: `metrics × sources must be at most ${MAX_FILTER_PAIRS} pairs per connection` }],
      code,
    );
  }
  let tags: TagFilter[];
  try {
    tags = parseTags(input.tags, 'tags');
  } catch (err) {
    const details = (err as { details?: { parameter?: string } }).details;
    throw fieldErrors([{ field: details?.parameter ?? 'tags', message: (err as Error).message }], code);
  }
  if (tags.length > MAX_TAG_KEYS)
    throw fieldErrors([{ field: 'tags', message: `has more than ${MAX_TAG_KEYS} keys` }], code);
  if (tags.reduce((n, t) => n + t.values.length, 0) > MAX_TAG_VALUES)
    throw fieldErrors([{ field: 'tags', message: `lists more than ${MAX_TAG_VALUES} values in all` }], code);
  return { metrics, sources, tags };
}

/** Entries a filter takes in the subscription index. */
export const filterPairs = (f: Pick<StreamFilter, 'metrics' | 'sources'>) =>
  (f.metrics?.length ?? 1) * (f.sources?.length ?? 1);

export function tagsMatch(filters: readonly TagFilter[], tags: Readonly<Record<string, string>>): boolean {
  for (const f of filters) {
    const v = tags[f.key];
    if (v === undefined || !f.values.includes(v)) return false;
  }
  return true;
}

export function matches(f: StreamFilter, s: SeriesIdentity): boolean {
  return (
    (f.metrics === null || f.metrics.includes(s.metric)) &&
    (f.sources === null || f.sources.includes(s.source)) &&
    tagsMatch(f.tags, s.tags)
  );
}

/** The filter as it is echoed to clients (`tags` as an object of value lists). */
export function describeFilter(f: StreamFilter) {
  return {
    metrics: f.metrics,
    sources: f.sources,
    tags: Object.fromEntries(f.tags.map((t) => [t.key, t.values.length === 1 ? t.values[0] : t.values])),
  };
}

const ANY = '\u0000'; // no metric or source can be NUL

export interface IndexEntry<T> {
  readonly filter: StreamFilter;
  readonly target: T;
}

/**
 * Subscriptions indexed by (metric, source), either of which may be "any", so that matching a
 * committed series looks at the few subscriptions that name it rather than all of them. Matches
 * per series are cached until the subscriptions change.
 */
export class SubscriptionIndex<T> {
  private readonly cells = new Map<string, Map<string, Set<IndexEntry<T>>>>();
  private readonly cache = new Map<string, { version: number; targets: T[] }>();
  private version = 0;
  private entries = 0;

  constructor(private readonly cacheSize = 100_000) {}

  get size(): number {
    return this.entries;
  }

  add(filter: StreamFilter, target: T): IndexEntry<T> {
    const entry: IndexEntry<T> = { filter, target };
    for (const m of filter.metrics ?? [ANY]) {
      let bySource = this.cells.get(m);
      if (!bySource) this.cells.set(m, (bySource = new Map()));
      for (const s of filter.sources ?? [ANY]) {
        let set = bySource.get(s);
        if (!set) bySource.set(s, (set = new Set()));
        set.add(entry);
      }
    }
    this.entries++;
    this.version++;
    return entry;
  }

  remove(entry: IndexEntry<T>): void {
    let found = false;
    for (const m of entry.filter.metrics ?? [ANY]) {
      const bySource = this.cells.get(m);
      if (!bySource) continue;
      for (const s of entry.filter.sources ?? [ANY]) {
        const set = bySource.get(s);
        if (set?.delete(entry)) found = true;
        if (set && set.size === 0) bySource.delete(s);
      }
      if (bySource.size === 0) this.cells.delete(m);
    }
    if (found) {
      this.entries--;
      this.version++;
    }
  }

  /** The distinct targets of every subscription matching this series. `key` identifies the series (cache key). */
  match(s: SeriesIdentity, key: string): readonly T[] {
    const hit = this.cache.get(key);
    if (hit && hit.version === this.version) return hit.targets;
    const seen = new Set<T>();
    const consider = (set: Set<IndexEntry<T>> | undefined) => {
      if (!set) return;
      for (const e of set) if (tagsMatch(e.filter.tags, s.tags)) seen.add(e.target);
    };
    for (const m of [s.metric, ANY]) {
      const bySource = this.cells.get(m);
      if (!bySource) continue;
      consider(bySource.get(s.source));
      consider(bySource.get(ANY));
    }
    const targets = [...seen];
    if (this.cache.size >= this.cacheSize) this.cache.clear();
    this.cache.set(key, { version: this.version, targets });
    return targets;
  }
}
