import { BoundedCache } from '../common/bounded-cache.js';

/** What the writer remembers about a series between batches. */
export interface CachedSeries {
  id: number;
  unit: string | null;
  /** first_seen / last_seen as last written to the database (epoch ms), to update them sparingly. */
  firstSeen: number;
  lastSeen: number;
}

/** Series key → id, bounded (SERIES_CACHE_SIZE). */
export class SeriesCache extends BoundedCache<CachedSeries> {}
