/**
 * Token buckets, one per (class, client): a bucket holds up to `perMinute` requests and refills at
 * `perMinute` per minute, so a client may burst a minute's worth and then keeps the average. At most
 * `maxClients` buckets are kept: past it the oldest-touched tenth is dropped (those clients start
 * again with a full bucket), so memory stays bounded whatever the number of clients or addresses.
 */
interface Bucket {
  tokens: number;
  at: number;
}

export interface Verdict {
  allowed: boolean;
  /** Requests left in the bucket after this one. */
  remaining: number;
  /** Whole seconds until one request is allowed again (0 when allowed). */
  retryAfter: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly maxClients: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one request from the bucket `id` if it has one. `perMinute` 0 means unlimited. */
  take(id: string, perMinute: number): Verdict {
    return this.check(id, perMinute, true);
  }

  /** Like `take` but only looks: is a request allowed now? */
  peek(id: string, perMinute: number): Verdict {
    return this.check(id, perMinute, false);
  }

  private check(id: string, perMinute: number, consume: boolean): Verdict {
    if (perMinute <= 0) return { allowed: true, remaining: Infinity, retryAfter: 0 };
    const now = this.now();
    const perMs = perMinute / 60_000;
    const b = this.buckets.get(id);
    const tokens = b ? Math.min(perMinute, b.tokens + (now - b.at) * perMs) : perMinute;
    if (tokens < 1) {
      return { allowed: false, remaining: 0, retryAfter: Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)) };
    }
    if (!consume) return { allowed: true, remaining: Math.floor(tokens - 1), retryAfter: 0 };
    if (b)
      this.buckets.delete(id); // re-inserted last: the map's order is least recently used first
    else if (this.buckets.size >= this.maxClients) this.evict();
    this.buckets.set(id, { tokens: tokens - 1, at: now });
    return { allowed: true, remaining: Math.floor(tokens - 1), retryAfter: 0 };
  }

  private evict(): void {
    let n = Math.max(1, Math.floor(this.maxClients / 10));
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (--n === 0) break;
    }
  }
}
