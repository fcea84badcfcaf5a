import { Injectable } from '@nestjs/common';
import type pg from 'pg';
import { Database } from '../database/database.js';
import type { SeriesRef } from './point-batch.js';

export interface SeriesRow {
  id: number;
  metric: string;
  source: string;
  tags_key: string;
  unit: string | null;
  first_seen_ms: number | null;
  last_seen_ms: number | null;
}

/** A connection, or a client inside a transaction: creating series and changing units are part of a write transaction. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

const RETURNING = `id, metric, source, tags_key, unit,
  (extract(epoch FROM first_seen) * 1000)::float8 AS first_seen_ms,
  (extract(epoch FROM last_seen) * 1000)::float8 AS last_seen_ms`;

/** All SQL on the `series` table used by the write path. */
@Injectable()
export class SeriesRepository {
  constructor(private readonly database: Database) {}

  async count(): Promise<number> {
    const r = await this.database.readPool.query<{ n: number }>('SELECT count(*) AS n FROM series');
    return r.rows[0].n;
  }

  /** Existing rows for these identities. */
  async find(refs: readonly SeriesRef[]): Promise<SeriesRow[]> {
    const r = await this.database.writePool.query<SeriesRow>(
      `SELECT s.id, s.metric, s.source, s.tags_key, s.unit,
              (extract(epoch FROM s.first_seen) * 1000)::float8 AS first_seen_ms,
              (extract(epoch FROM s.last_seen) * 1000)::float8 AS last_seen_ms
       FROM unnest($1::text[], $2::text[], $3::text[]) AS t(metric, source, tags_key)
       JOIN series s ON s.metric = t.metric AND s.source = t.source AND md5(s.tags_key) = md5(t.tags_key) AND s.tags_key = t.tags_key`,
      [refs.map((s) => s.metric), refs.map((s) => s.source), refs.map((s) => s.tagsKey)],
    );
    return r.rows;
  }

  /** Inserts these series (or returns them if another writer just did), in `client`'s transaction. */
  async insert(
    client: Queryable,
    refs: readonly SeriesRef[],
    firstSeen: number[],
    lastSeen: number[],
  ): Promise<Array<SeriesRow & { inserted: boolean }>> {
    const r = await client.query<SeriesRow & { inserted: boolean }>(
      `INSERT INTO series (metric, source, tags, tags_key, unit, first_seen, last_seen)
       SELECT t.metric, t.source, t.tags_key::jsonb, t.tags_key, t.unit, to_timestamp(t.f / 1000), to_timestamp(t.l / 1000)
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[]) AS t(metric, source, tags_key, unit, f, l)
       ON CONFLICT (metric, source, md5(tags_key)) DO UPDATE SET unit = COALESCE(EXCLUDED.unit, series.unit)
       RETURNING ${RETURNING}, (xmax = 0) AS inserted`,
      [
        refs.map((s) => s.metric),
        refs.map((s) => s.source),
        refs.map((s) => s.tagsKey),
        refs.map((s) => s.unit),
        firstSeen,
        lastSeen,
      ],
    );
    return r.rows;
  }

  /**
   * Sets units; the rows are locked in id order first (an UPDATE … FROM locks them in the order its
   * plan reads them), so two transactions changing the same series wait for each other instead of
   * deadlocking.
   */
  async updateUnits(client: Queryable, ids: number[], units: string[]): Promise<void> {
    await client.query(
      `WITH locked AS (SELECT id FROM series WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE)
       UPDATE series SET unit = t.unit FROM unnest($1::int[], $2::text[]) AS t(id, unit)
       WHERE series.id = t.id AND t.id IN (SELECT id FROM locked)`,
      [ids, units],
    );
  }

  /** Widens first_seen/last_seen; called sparingly (see PointWriter). */
  async updateSeen(ids: number[], firstSeen: number[], lastSeen: number[]): Promise<void> {
    await this.database.writePool.query(
      `UPDATE series SET first_seen = LEAST(series.first_seen, to_timestamp(t.f / 1000)),
                         last_seen = GREATEST(series.last_seen, to_timestamp(t.l / 1000))
       FROM unnest($1::int[], $2::float8[], $3::float8[]) AS t(id, f, l) WHERE series.id = t.id`,
      [ids, firstSeen, lastSeen],
    );
  }
}
