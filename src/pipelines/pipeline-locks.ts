import { PIPELINE_LOCK_NAMESPACE, pipelineLockKey } from '../database/advisory-locks.js';
import { Database } from '../database/database.js';
import { SessionConnection } from '../database/session-connection.js';

/**
 * One run of a pipeline at a time, scheduled or manual, across instances: a session-level advisory
 * lock per pipeline, held on one dedicated connection (SessionConnection: a long run holds no
 * pool connection for its lock; if that connection drops, PostgreSQL releases the locks). Locks of
 * one session are re-entrant, so this instance also keeps its own set. PGlite serves one session:
 * the set alone.
 */
export class PipelineLocks {
  private readonly held = new Set<number>();
  private readonly session: SessionConnection;

  constructor(private readonly database: Database) {
    this.session = new SessionConnection(database);
  }

  async tryAcquire(id: number): Promise<boolean> {
    if (this.held.has(id)) return false;
    this.held.add(id);
    try {
      if (!this.database.info.pglite) {
        const r = await this.session.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
          PIPELINE_LOCK_NAMESPACE,
          pipelineLockKey(id),
        ]);
        if (!r.rows[0].ok) {
          this.held.delete(id);
          return false;
        }
      }
      return true;
    } catch (err) {
      this.held.delete(id);
      throw err;
    }
  }

  /** Waits up to `waitMs` for the lock; false if another run still holds it. */
  async acquire(id: number, waitMs: number): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (await this.tryAcquire(id)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async release(id: number): Promise<void> {
    if (!this.held.delete(id) || this.database.info.pglite) return;
    await this.session
      .query('SELECT pg_advisory_unlock($1, $2)', [PIPELINE_LOCK_NAMESPACE, pipelineLockKey(id)])
      .catch(() => undefined);
  }

  close(): Promise<void> {
    return this.session.close();
  }
}
