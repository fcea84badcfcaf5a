import { Injectable } from '@nestjs/common';
import { Database } from '../database/database.js';
import type { Scope } from './keys.js';

export interface KeyRow {
  id: number;
  name: string;
  prefix: string;
  scopes: Scope[];
  rate_limits: Record<string, number>;
  created_at: Date;
  created_by: string;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface NewKeyRow {
  name: string;
  prefix: string;
  hash: Buffer;
  scopes: Scope[];
  rateLimits: Record<string, number>;
  createdBy: string;
  expiresAt: string | null;
}

const COLUMNS = 'id, name, prefix, scopes, rate_limits, created_at, created_by, expires_at, last_used_at, revoked_at';

/** All SQL of the api_keys table. Also used by the `make key` CLI, outside Nest. */
@Injectable()
export class ApiKeysRepository {
  constructor(private readonly database: Database) {}

  /** Undefined when a live key already has this name. */
  async insert(k: NewKeyRow): Promise<KeyRow | undefined> {
    const r = await this.database.readPool.query<KeyRow>(
      `INSERT INTO api_keys (name, prefix, hash, scopes, rate_limits, created_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
       RETURNING ${COLUMNS}`,
      [k.name, k.prefix, k.hash, k.scopes, JSON.stringify(k.rateLimits), k.createdBy, k.expiresAt],
    );
    return r.rows[0];
  }

  /** The live key with this hash (not revoked, not expired). */
  async byHash(hash: Buffer): Promise<KeyRow | undefined> {
    const r = await this.database.readPool.query<KeyRow>(
      `SELECT ${COLUMNS} FROM api_keys WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
      [hash],
    );
    return r.rows[0];
  }

  async list(includeRevoked: boolean): Promise<KeyRow[]> {
    const r = await this.database.readPool.query<KeyRow>(
      `SELECT ${COLUMNS} FROM api_keys ${includeRevoked ? '' : 'WHERE revoked_at IS NULL'} ORDER BY id`,
    );
    return r.rows;
  }

  /** Of `ids`, the keys still live (not revoked, not expired) that may read (read or admin scope). */
  async liveReaders(ids: readonly number[]): Promise<number[]> {
    const r = await this.database.readPool.query<{ id: number }>(
      `SELECT id FROM api_keys WHERE id = ANY($1::bigint[]) AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > now()) AND scopes && ARRAY['read', 'admin']`,
      [ids],
    );
    return r.rows.map((row) => Number(row.id));
  }

  async get(id: number): Promise<KeyRow | undefined> {
    return (await this.database.readPool.query<KeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id])).rows[0];
  }

  /**
   * Revokes a live key, unless it is the last live admin key (that would lock everyone out of key
   * management). Both checks run in one transaction under a lock on the live admin keys.
   */
  async revoke(id: number): Promise<{ row?: KeyRow; lastAdmin?: boolean }> {
    return this.database.generalTransaction(async (c) => {
      const admins = await c.query<{ id: number }>(
        `SELECT id FROM api_keys WHERE revoked_at IS NULL AND 'admin' = ANY(scopes) AND (expires_at IS NULL OR expires_at > now()) FOR UPDATE`,
      );
      if (admins.rows.length === 1 && admins.rows[0].id === id) return { lastAdmin: true };
      const r = await c.query<KeyRow>(
        `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
        [id],
      );
      return { row: r.rows[0] };
    });
  }

  /** Revokes any live key, the last admin key too (the `make key` CLI: recovery needs no key). */
  async revokeAny(id: number): Promise<KeyRow | undefined> {
    const r = await this.database.readPool.query<KeyRow>(
      `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
      [id],
    );
    return r.rows[0];
  }

  /** Names of live keys equal to `base` or starting with `base-`. */
  async namesLike(base: string): Promise<Set<string>> {
    const r = await this.database.readPool.query<{ name: string }>(
      `SELECT name FROM api_keys WHERE revoked_at IS NULL AND (name = $1 OR starts_with(name, $1 || '-'))`,
      [base],
    );
    return new Set(r.rows.map((x) => x.name));
  }

  /** Records when keys were last used (batched by the service, at most once a minute per key). */
  async touch(used: Map<number, number>): Promise<void> {
    if (used.size === 0) return;
    await this.database.readPool.query(
      `UPDATE api_keys k SET last_used_at = u.at
       FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)
       WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
      [[...used.keys()], [...used.values()].map((ms) => new Date(ms).toISOString())],
    );
  }
}
