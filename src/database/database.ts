import { Logger, OnApplicationShutdown } from '@nestjs/common';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { isDatabaseUnavailable } from '../common/error-envelope.js';
import type { AppConfig } from '../config/config.js';

// bigint (count(*), sums of counts) and numeric come back as JS numbers: metric values are doubles anyway.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export type Flavour = 'timescaledb' | 'postgresql';

/** Anything that runs a query: a pool, a client, or a job's connection. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface DatabaseInfo {
  /** How the schema was built: hypertables + continuous aggregates, or native partitions + rollup tables. */
  flavour: Flavour;
  serverVersion: string;
  /** PGlite (WASM PostgreSQL, used by tests for the TimescaleDB flavour): one session, no COPY FROM STDIN. */
  pglite: boolean;
  /** How the point writer talks to the server. */
  writeMethod: 'copy' | 'unnest';
}

/**
 * Connections to PostgreSQL: the general pool (`readPool`: API queries, control-plane writes,
 * jobs) and the ingest pool (`writePool`: the point writer and series resolution), so that long
 * reads and jobs never starve ingest; and, on a server (not PGlite) with at least 2 read
 * connections, the bucket pool (`bucketPool`, half of them rounded up) for `preparedRead`. On
 * PGlite the general and ingest pools are one single-connection pool.
 */
export class Database implements OnApplicationShutdown {
  private readonly logger = new Logger('database');
  info: DatabaseInfo;
  /**
   * The statement name of each text `preparedRead` has named (prepared on each bucket connection
   * when first used there). Looked up by text: hashing ~3 KB of SQL on every read cost more than
   * the lookup.
   */
  private readonly prepared = new Map<string, string>();

  private constructor(
    readonly readPool: pg.Pool,
    readonly writePool: pg.Pool,
    info: DatabaseInfo,
    private readonly clientConfig: pg.ClientConfig,
    readonly bucketPool?: pg.Pool,
    /** How many `prepared` may hold (DB_PREPARED_READS); past it, new shapes run unnamed on the general pool. */
    private readonly maxPrepared = 0,
  ) {
    this.info = info;
  }

  static async open(config: AppConfig, url: string): Promise<Database> {
    const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: config.db.connectTimeoutMs });
    probe.on('error', () => undefined);
    await probe.connect();
    let serverVersion: string;
    try {
      serverVersion = (await probe.query<{ v: string }>('SELECT version() AS v')).rows[0].v;
    } finally {
      await probe.end().catch(() => undefined);
    }
    const pglite = /emscripten/i.test(serverVersion);
    const base: pg.PoolConfig = {
      connectionString: url,
      connectionTimeoutMillis: config.db.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'timescope',
      // Startup options are not understood by PGlite's socket server.
      options: pglite ? undefined : `-c statement_timeout=${config.db.statementTimeoutMs} -c jit=off`,
    };
    let readPool: pg.Pool;
    let writePool: pg.Pool;
    let bucketPool: pg.Pool | undefined;
    if (pglite) {
      readPool = writePool = guarded(new pg.Pool({ ...base, max: 1 }));
    } else {
      const writers = Math.min(config.db.writeConnections + 1, config.db.poolMax); // + 1 for series lookups
      const readers = Math.max(1, config.db.poolMax - writers);
      const bucketReaders = readers >= 2 && config.db.preparedReads > 0 ? Math.ceil(readers / 2) : 0;
      readPool = guarded(new pg.Pool({ ...base, max: readers - bucketReaders }));
      writePool = guarded(new pg.Pool({ ...base, max: writers }));
      if (bucketReaders > 0)
        bucketPool = guarded(
          new pg.Pool({
            ...base,
            max: bucketReaders,
            options: `${base.options} -c plan_cache_mode=force_generic_plan`,
          }),
        );
    }
    const writeMethod = config.ingest.writeMethod === 'auto' ? (pglite ? 'unnest' : 'copy') : config.ingest.writeMethod;
    if (pglite && writeMethod === 'copy')
      throw new Error('INGEST_WRITE_METHOD=copy: PGlite cannot take COPY FROM STDIN');
    return new Database(
      readPool,
      writePool,
      { flavour: 'postgresql', serverVersion, pglite, writeMethod },
      base,
      bucketPool,
      config.db.preparedReads,
    );
  }

  /** How many shapes `preparedRead` has named so far (at most DB_PREPARED_READS). */
  get preparedShapes(): number {
    return this.prepared.size;
  }

  /**
   * A read whose text is one of a few shapes asked again and again (the query API's bucket reads),
   * with every varying value a parameter: run as a named statement on the bucket pool, whose
   * connections use generic plans (plan_cache_mode=force_generic_plan), so that each connection
   * parses and plans a shape once. PostgreSQL then prunes partitions when the statement starts
   * instead of when it is planned: on the query bench's 1-day read, planning took 0.8 of its 1.4 ms.
   * The general pool runs it unnamed (planned each time) on PGlite and TimescaleDB (whose chunk
   * exclusion under generic plans is not measured here), with fewer than 2 read connections, with
   * DB_PREPARED_READS=0, and for new shapes once DB_PREPARED_READS are named: a generic plan holds
   * every partition it may read, 0.4 MB of server memory per shape and connection with 8 daily
   * partitions, 1.2 MB with 34 (until the connection closes, after 30 s idle).
   */
  preparedRead<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    if (!this.bucketPool || this.info.flavour !== 'postgresql') return this.readPool.query<R>(text, values);
    let name = this.prepared.get(text);
    if (name === undefined) {
      if (this.prepared.size >= this.maxPrepared) return this.readPool.query<R>(text, values);
      name = `tsq_${createHash('sha1').update(text).digest('base64url')}`;
      this.prepared.set(text, name);
    }
    return this.bucketPool.query<R>({ name, text, values });
  }

  /** Runs `fn` on one connection of the write pool (jobs, DDL, the writer). */
  async withWriteClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.writePool.connect();
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      // A connection that failed mid-statement is thrown away rather than handed to the next caller.
      if (isDatabaseUnavailable(err)) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** A connection outside the pools, e.g. to hold session-level advisory locks. Not on PGlite. */
  async dedicatedClient(): Promise<pg.Client> {
    if (this.info.pglite) throw new Error('PGlite serves one connection: use the pool');
    const client = new pg.Client(this.clientConfig);
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    return client;
  }

  /**
   * Runs `fn` inside BEGIN/COMMIT on a connection of the general (read) pool; rolls back on any
   * error. For state changes outside ingest (alerts, services, pipelines), which must not wait for
   * or hold up the writer's connections.
   */
  async generalTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.readPool.connect();
    try {
      return await transaction(client, fn);
    } finally {
      client.release();
    }
  }

  /** Runs `fn` inside BEGIN/COMMIT on a write connection; rolls back on any error. */
  async writeTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.withWriteClient((client) => transaction(client, fn));
  }

  /** Round-trip latency in ms, or throws when the server is unreachable. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.readPool.query('SELECT 1');
    return performance.now() - t0;
  }

  poolStats() {
    const s = (p: pg.Pool) => ({ total: p.totalCount, idle: p.idleCount, waiting: p.waitingCount });
    return {
      read: s(this.readPool),
      write: this.writePool === this.readPool ? undefined : s(this.writePool),
      buckets: this.bucketPool ? s(this.bucketPool) : undefined,
    };
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    for (const pool of new Set([this.readPool, this.writePool, this.bucketPool]))
      if (pool && !pool.ended) await pool.end().catch(() => undefined);
    this.logger.log('connections closed');
  }
}

/**
 * Error listeners without which a lost connection kills the process (node-postgres #2386): the
 * pool's own listener covers idle connections only, so every connection also gets one for the
 * time it is checked out. The statement running on it fails on its own, and the pool discards a
 * connection that is no longer queryable when it comes back.
 */
function guarded(pool: pg.Pool): pg.Pool {
  const logger = new Logger('database');
  const report = (err: Error) =>
    pool.ending
      ? logger.debug(`connection error while closing: ${err.message}`)
      : logger.warn(`connection error: ${err.message}`);
  pool.on('connect', (client) => client.on('error', report));
  pool.on('error', () => undefined); // an idle connection's error, already logged by the listener above
  return pool;
}

export async function transaction<C extends Queryable, T>(client: C, fn: (client: C) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
