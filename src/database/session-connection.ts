import type pg from 'pg';
import type { Database } from './database.js';

/**
 * One dedicated connection outside the pools, for session state such as session-level advisory
 * locks (so holding a lock holds no pool connection). Opened on first use; its queries run one
 * after another (pg deprecates overlapping queries on one client); opened anew after it drops,
 * when PostgreSQL has released whatever the old session held. PGlite serves one session to every
 * connection: there the pool serves.
 */
export class SessionConnection {
  private client?: Promise<pg.Client>;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly database: Database) {}

  query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const run = this.tail.then(async () => {
      if (this.database.info.pglite) return this.database.readPool.query<R>(text, values);
      return (await this.connect()).query<R>(text, values);
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await (await c.catch(() => undefined))?.end().catch(() => undefined);
  }

  private connect(): Promise<pg.Client> {
    const opening = (this.client ??= this.database.dedicatedClient().then(
      (c) => {
        // The session and what it held are gone: the next query opens a new one.
        const forget = () => {
          if (this.client === opening) this.client = undefined;
        };
        c.on('error', forget);
        c.on('end', forget);
        return c;
      },
      (err) => {
        this.client = undefined;
        throw err;
      },
    ));
    return opening;
  }
}
