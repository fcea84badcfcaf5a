/**
 * A bounded map with approximate LRU eviction and O(1) hits: two generations; a hit in the old
 * one is promoted, and when the young one fills up the old one is dropped. At most `capacity`
 * entries are held; entries in use survive every rotation.
 */
export class BoundedCache<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();
  private readonly half: number;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(readonly capacity: number) {
    this.half = Math.max(1, Math.floor(capacity / 2));
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  get(key: string): V | undefined {
    let e = this.young.get(key);
    if (e !== undefined) {
      this.hits++;
      return e;
    }
    e = this.old.get(key);
    if (e !== undefined) {
      this.hits++;
      this.old.delete(key);
      this.insert(key, e);
      return e;
    }
    this.misses++;
    return undefined;
  }

  /** The entry, without counting a hit or a miss or refreshing its age (bookkeeping, not a lookup). */
  peek(key: string): V | undefined {
    return this.young.get(key) ?? this.old.get(key);
  }

  set(key: string, value: V): void {
    this.old.delete(key);
    this.insert(key, value);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }

  private insert(key: string, value: V): void {
    if (this.young.size >= this.half) {
      this.evictions += this.old.size;
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }
}
