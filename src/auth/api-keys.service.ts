import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { ApiError, notFound } from '../common/errors.js';
import { AppConfig, RateClass } from '../config/config.js';
import { ApiKeysRepository, KeyRow, NewKeyRow } from './api-keys.repository.js';
import { KeySpec, parseKeySpec } from './key-spec.js';
import { generateKey, hashKey, looksLikeKey, Scope } from './keys.js';

/** Who is calling: a key, or nobody in particular (AUTH off). */
export interface Principal {
  keyId: number | null;
  /** The key's name; `anonymous` without a key. Recorded as the actor of configuration changes. */
  name: string;
  scopes: readonly Scope[];
  rateLimits: Partial<Record<RateClass, number>>;
}

/** The reply shape of a key: never its hash (and the key itself only once, at creation). */
export function keyView(r: KeyRow) {
  return {
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    scopes: r.scopes,
    rate_limits: r.rate_limits,
    created_at: r.created_at.toISOString(),
    created_by: r.created_by,
    expires_at: r.expires_at?.toISOString() ?? null,
    last_used_at: r.last_used_at?.toISOString() ?? null,
    revoked_at: r.revoked_at?.toISOString() ?? null,
  };
}

/** Makes a key and stores its hash; the one place keys are born (the API and the `make key` CLI). */
export async function issueKey(
  insert: (k: NewKeyRow) => Promise<KeyRow | undefined>,
  spec: KeySpec,
  createdBy: string,
) {
  const k = generateKey();
  const row = await insert({
    name: spec.name,
    prefix: k.prefix,
    hash: k.hash,
    scopes: spec.scopes,
    rateLimits: spec.rateLimits,
    createdBy,
    expiresAt: spec.expiresAt,
  });
  if (!row)
    throw new ApiError(
      409,
      'CONFLICT',
      `A live API key named ${spec.name} exists; choose another name or revoke it first`,
      { field: 'name' },
    );
  return { ...keyView(row), key: k.key };
}

const TOUCH_EVERY_MS = 60_000;

/** How long a key that was live at a lookup is still looked up from an address blocked for wrong keys. */
const PROVEN_MS = 60 * 60_000;

/**
 * API keys: create, list, revoke, and the lookup behind every request. Lookups are cached for
 * AUTH_KEY_CACHE_SECONDS (unknown keys too, so a flood of bad keys does not reach PostgreSQL);
 * a revocation clears this instance's cache at once, other instances within that time.
 */
@Injectable()
export class ApiKeysService implements OnApplicationShutdown {
  private readonly logger = new Logger('auth');
  private readonly cache = new Map<string, { principal: Principal | null; until: number }>();
  private readonly used = new Map<number, number>();
  private readonly lastTouched = new Map<number, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly revokedListeners = new Set<(id: number) => void>();
  /** Keys that were live at their last lookup here, and when: see provenGood. */
  private readonly proven = new Map<string, number>();

  constructor(
    private readonly repo: ApiKeysRepository,
    private readonly config: AppConfig,
  ) {
    this.timer = setInterval(() => void this.flushUsage(), TOUCH_EVERY_MS);
    this.timer.unref();
  }

  async create(body: unknown, by: string) {
    return issueKey((k) => this.repo.insert(k), parseKeySpec(body), by);
  }

  async list(includeRevoked: boolean) {
    return { keys: (await this.repo.list(includeRevoked)).map(keyView) };
  }

  async get(id: string) {
    const row = await this.repo.get(keyId(id));
    if (!row) throw notFound(`No API key ${id}`);
    return keyView(row);
  }

  async revoke(id: string): Promise<void> {
    const n = keyId(id);
    const { row, lastAdmin } = await this.repo.revoke(n);
    if (lastAdmin) {
      throw new ApiError(
        409,
        'CONFLICT',
        'This is the last live admin key: create another admin key first (or one with `make key`), then revoke this one',
        { id: n },
      );
    }
    if (!row) throw notFound(`No live API key ${id}`);
    this.cache.clear();
    this.proven.clear();
    this.logger.log(`API key ${row.id} (${row.name}) revoked`);
    for (const l of this.revokedListeners) l(Number(row.id));
  }

  /**
   * Whether `token` was a live key at a lookup here within the last PROVEN_MS: such a key is still
   * looked up while its client's address is blocked for wrong keys (front-door.ts), so that a client
   * behind the same proxy or NAT as someone trying keys keeps working. A guess never was live.
   */
  provenGood(token: string, now = Date.now()): boolean {
    const at = this.proven.get(token);
    return at !== undefined && now - at < PROVEN_MS;
  }

  /** Called with the id of each key revoked through this instance (the CLI and other instances: see liveReaders). */
  onRevoked(listener: (id: number) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /** Of `ids`, the keys that may still read: live, unexpired, with the read or admin scope. */
  async liveReaders(ids: readonly number[]): Promise<Set<number>> {
    return new Set(await this.repo.liveReaders(ids));
  }

  async liveAdminKeys(): Promise<number> {
    return (await this.repo.list(false)).filter(
      (k) => k.scopes.includes('admin') && (!k.expires_at || k.expires_at.getTime() > Date.now()),
    ).length;
  }

  /** The principal of a bearer token, or null when it is not a live key. */
  async authenticate(token: string): Promise<Principal | null> {
    if (!looksLikeKey(token)) return null;
    const now = Date.now();
    const cached = this.cache.get(token);
    let principal: Principal | null;
    if (cached && cached.until > now) principal = cached.principal;
    else {
      const row = await this.repo.byHash(hashKey(token));
      principal = row ? { keyId: row.id, name: row.name, scopes: row.scopes, rateLimits: row.rate_limits } : null;
      if (this.config.auth.keyCacheMs > 0) {
        if (this.cache.size >= 10_000) this.cache.clear(); // bounded; a refill costs one query per key
        const expires = row?.expires_at ? row.expires_at.getTime() : Infinity;
        this.cache.set(token, { principal, until: Math.min(now + this.config.auth.keyCacheMs, expires) });
      }
    }
    if (principal) {
      if (this.proven.size >= 10_000) this.proven.clear(); // bounded, as the cache
      this.proven.set(token, now);
    }
    if (principal?.keyId != null && now - (this.lastTouched.get(principal.keyId) ?? 0) >= TOUCH_EVERY_MS) {
      this.lastTouched.set(principal.keyId, now);
      this.used.set(principal.keyId, now);
    }
    return principal;
  }

  private async flushUsage(): Promise<void> {
    if (this.used.size === 0) return;
    const batch = new Map(this.used);
    this.used.clear();
    try {
      await this.repo.touch(batch);
    } catch (err) {
      this.logger.debug(`could not record key usage: ${(err as Error).message}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.flushUsage();
  }
}

function keyId(id: string): number {
  const n = /^\d{1,15}$/.test(id) ? Number(id) : NaN;
  if (!Number.isSafeInteger(n)) throw notFound(`No API key ${id}`);
  return n;
}
