import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database, Queryable } from '../database/database.js';
import type { EventFilter, EventLevel, NewEvent, StoredEvent } from './event-input.js';

interface EventRow {
  id: number;
  t: number;
  kind: string;
  source: string | null;
  level: EventLevel;
  message: string;
  attributes: Record<string, unknown>;
}

const COLUMNS = `id, (extract(epoch FROM time) * 1000)::float8 AS t, kind, source, level, message, attributes`;
const toEvent = (r: EventRow): StoredEvent => ({
  id: r.id,
  time: r.t,
  kind: r.kind,
  source: r.source,
  level: r.level,
  message: r.message,
  attributes: r.attributes,
});

/** All SQL of the events table. */
@Injectable()
export class EventsRepository {
  constructor(private readonly database: Database) {}

  /** One statement for the whole list (arrays through unnest); `client` to join a caller's transaction. */
  async insert(events: readonly NewEvent[], client: Queryable = this.database.writePool): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const r = await client.query<EventRow>(
      `INSERT INTO events (time, kind, source, level, message, attributes)
       SELECT t, k, s, l, m, a FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[]) AS u(t, k, s, l, m, a)
       RETURNING ${COLUMNS}`,
      [
        events.map((e) => toIso(e.time)),
        events.map((e) => e.kind),
        events.map((e) => e.source),
        events.map((e) => e.level),
        events.map((e) => e.message),
        events.map((e) => JSON.stringify(e.attributes)),
      ],
    );
    return r.rows.map(toEvent);
  }

  /** Newest first; `limit + 1` rows so the caller can tell whether there is more. */
  async list(f: EventFilter): Promise<StoredEvent[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    const add = (v: unknown) => `$${params.push(v)}`;
    if (f.kinds) where.push(`kind = ANY(${add(f.kinds)}::text[])`);
    if (f.sources) where.push(`source = ANY(${add(f.sources)}::text[])`);
    if (f.levels) where.push(`level = ANY(${add(f.levels)}::text[])`);
    if (f.since !== undefined) where.push(`time >= ${add(toIso(f.since))}::timestamptz`);
    if (f.until !== undefined) where.push(`time < ${add(toIso(f.until))}::timestamptz`);
    if (f.after) where.push(`(time, id) < (${add(toIso(f.after.time))}::timestamptz, ${add(f.after.id)}::bigint)`);
    const r = await this.database.readPool.query<EventRow>(
      `SELECT ${COLUMNS} FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, id DESC LIMIT ${add(f.limit + 1)}`,
      params,
    );
    return r.rows.map(toEvent);
  }

  /** Events of one kind about given sources in [from, to), oldest first, plus the last one before `from` for each source. */
  async history(
    kind: string,
    sources: readonly string[],
    from: number,
    to: number,
    limit: number,
  ): Promise<StoredEvent[]> {
    const r = await this.database.readPool.query<EventRow>(
      `SELECT * FROM (
         SELECT ${COLUMNS} FROM events WHERE kind = $1 AND source = ANY($2::text[]) AND time >= $3::timestamptz AND time < $4::timestamptz
         UNION ALL
         SELECT b.* FROM unnest($2::text[]) AS s(name)
         CROSS JOIN LATERAL (SELECT ${COLUMNS} FROM events WHERE kind = $1 AND source = s.name AND time < $3::timestamptz ORDER BY time DESC, id DESC LIMIT 1) b
       ) x ORDER BY t, id LIMIT $5`,
      [kind, sources, toIso(from), toIso(to), limit],
    );
    return r.rows.map(toEvent);
  }
}
