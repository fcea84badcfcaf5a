import { Injectable } from '@nestjs/common';
import { toIso } from '../common/time.js';
import { Database, Queryable } from '../database/database.js';
import { tagConditions } from '../query/query.repository.js';
import type { TagFilter } from '../query/query-spec.js';
import type { GroupedBucket } from '../storage/rollup-reader.js';
import { AggFunction, PERCENTILES, PipelineDefinition, SOURCE_KEY } from './definition.js';

/** Ids are bigint columns, read as numbers (src/database/database.ts sets the parser). */
export interface PipelineRow {
  id: number;
  name: string;
  description: string | null;
  enabled: boolean;
  definition: PipelineDefinition;
  webhook_secret: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  last_window_end: Date | null;
  failures: number;
  retry_at: Date | null;
}

export interface RunRecord {
  pipelineId: number;
  version: number;
  trigger: 'schedule' | 'manual';
  status: 'ok' | 'failed';
  instance: string;
  startedAt: number;
  finishedAt: number;
  from: number | null;
  to: number | null;
  windows: number;
  rows: number;
  skippedWindows: number;
  output: Record<string, unknown>;
  error: string | null;
}

export interface RunRow {
  id: number;
  pipeline_id: number;
  pipeline_version: number;
  trigger: 'schedule' | 'manual';
  status: 'ok' | 'failed';
  instance: string;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  range_from: Date | null;
  range_to: Date | null;
  window_count: number;
  row_count: number;
  skipped_windows: number;
  output: Record<string, unknown>;
  error: string | null;
}

/**
 * One aggregated cell: a window (its start `t`) of one metric in one group, one value per function.
 * The same shape whether aggregated here from raw points or read from rollups by storage's RollupReader.
 */
export type AggregateRow = GroupedBucket;

export interface AggregateQuery {
  seriesIds: number[];
  windowMs: number;
  stepMs: number;
  /** Window ends, consecutive multiples of stepMs, oldest first. */
  ends: number[];
  functions: AggFunction[];
  groupBy: string[];
  limit: number;
}

const COLUMNS = `id, name, description, enabled, definition, webhook_secret, version, created_at, updated_at, last_window_end, failures, retry_at`;
const RUN_COLUMNS = `id, pipeline_id, pipeline_version, trigger, status, instance, started_at, finished_at, duration_ms, range_from, range_to,
  window_count, row_count, skipped_windows, output, error`;

/** Fixed SQL per aggregate function; never user text. Percentiles share one sort (see `aggregate`). */
const AGG_SQL: Record<Exclude<AggFunction, 'p50' | 'p90' | 'p95' | 'p99'>, string> = {
  avg: 'sum(p.value) / count(*)', // avg(float8) also sums squares, which overflow from about 1.3e154
  sum: 'sum(p.value)',
  min: 'min(p.value)',
  max: 'max(p.value)',
  count: 'count(*)::float8',
  first: '(array_agg(p.value ORDER BY p.time, p.series_id))[1]',
  last: '(array_agg(p.value ORDER BY p.time DESC, p.series_id))[1]',
};

/** Saved pipelines, their runs, and the aggregation that feeds them (all of the module's SQL). */
@Injectable()
export class PipelinesRepository {
  constructor(private readonly database: Database) {}

  /** The new row, or undefined when the name is taken (no error raised: PGlite's socket drops the connection on one). */
  async insert(def: PipelineDefinition, secret: string | null): Promise<PipelineRow | undefined> {
    const r = await this.database.readPool.query<PipelineRow>(
      `INSERT INTO pipelines (name, description, enabled, definition, webhook_secret) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
      [def.name, def.description, def.enabled, JSON.stringify(def), secret],
    );
    return r.rows[0];
  }

  async nameTaken(name: string, exceptId: number): Promise<boolean> {
    const r = await this.database.readPool.query('SELECT 1 FROM pipelines WHERE name = $1 AND id <> $2', [
      name,
      exceptId,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  /** Replaces the definition; the schedule state stays, a failure back-off is forgotten. */
  async update(id: number, def: PipelineDefinition, secret: string | null): Promise<PipelineRow | undefined> {
    const r = await this.database.readPool.query<PipelineRow>(
      `UPDATE pipelines SET name = $2, description = $3, enabled = $4, definition = $5, webhook_secret = $6,
              version = version + 1, updated_at = now(), failures = 0, retry_at = NULL
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, def.name, def.description, def.enabled, JSON.stringify(def), secret],
    );
    return r.rows[0];
  }

  async get(id: number): Promise<PipelineRow | undefined> {
    const r = await this.database.readPool.query<PipelineRow>(`SELECT ${COLUMNS} FROM pipelines WHERE id = $1`, [id]);
    return r.rows[0];
  }

  async list(): Promise<PipelineRow[]> {
    const r = await this.database.readPool.query<PipelineRow>(`SELECT ${COLUMNS} FROM pipelines ORDER BY id`);
    return r.rows;
  }

  /** Enabled pipelines with a schedule: what the scheduler looks at. */
  async scheduled(): Promise<PipelineRow[]> {
    const r = await this.database.readPool.query<PipelineRow>(
      `SELECT ${COLUMNS} FROM pipelines WHERE enabled AND definition -> 'schedule' IS NOT NULL AND definition -> 'schedule' <> 'null'::jsonb ORDER BY id`,
    );
    return r.rows;
  }

  async delete(id: number): Promise<boolean> {
    const r = await this.database.readPool.query('DELETE FROM pipelines WHERE id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  }

  /**
   * Moves the scheduled watermark from `from` to `to` only if nobody moved it meanwhile, and clears
   * the failure back-off. False when the watermark had moved (the windows were someone else's).
   */
  async advance(id: number, from: number | null, to: number, c: Queryable = this.database.readPool): Promise<boolean> {
    const r = await c.query(
      `UPDATE pipelines SET last_window_end = $3, failures = 0, retry_at = NULL
       WHERE id = $1 AND last_window_end IS NOT DISTINCT FROM $2::timestamptz`,
      [id, from === null ? null : toIso(from), toIso(to)],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** Records a failed scheduled run: the watermark stays, the next try waits until `retryAt`. */
  async backOff(id: number, retryAt: number): Promise<void> {
    await this.database.readPool.query(`UPDATE pipelines SET failures = failures + 1, retry_at = $2 WHERE id = $1`, [
      id,
      toIso(retryAt),
    ]);
  }

  async insertRun(run: RunRecord, c: Queryable = this.database.readPool): Promise<RunRow | undefined> {
    const r = await c.query<RunRow>(
      `INSERT INTO pipeline_runs (pipeline_id, pipeline_version, trigger, status, instance, started_at, finished_at, duration_ms,
                                  range_from, range_to, window_count, row_count, skipped_windows, output, error)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
       WHERE EXISTS (SELECT 1 FROM pipelines WHERE id = $1)
       RETURNING ${RUN_COLUMNS}`,
      [
        run.pipelineId,
        run.version,
        run.trigger,
        run.status,
        run.instance,
        toIso(run.startedAt),
        toIso(run.finishedAt),
        Math.round((run.finishedAt - run.startedAt) * 100) / 100,
        run.from === null ? null : toIso(run.from),
        run.to === null ? null : toIso(run.to),
        run.windows,
        run.rows,
        run.skippedWindows,
        JSON.stringify(run.output),
        run.error,
      ],
    );
    return r.rows[0];
  }

  async runs(pipelineId: number, limit: number): Promise<RunRow[]> {
    const r = await this.database.readPool.query<RunRow>(
      `SELECT ${RUN_COLUMNS} FROM pipeline_runs WHERE pipeline_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2`,
      [pipelineId, limit],
    );
    return r.rows;
  }

  /** The latest run of each of the given pipelines. */
  async lastRuns(ids: number[]): Promise<Map<number, RunRow>> {
    if (ids.length === 0) return new Map();
    const r = await this.database.readPool.query<RunRow>(
      `SELECT x.* FROM unnest($1::bigint[]) AS q(id)
       CROSS JOIN LATERAL (SELECT ${RUN_COLUMNS} FROM pipeline_runs WHERE pipeline_id = q.id ORDER BY started_at DESC, id DESC LIMIT 1) x`,
      [ids],
    );
    return new Map(r.rows.map((row) => [Number(row.pipeline_id), row]));
  }

  /** The run history is an operational log: entries older than `days` go. */
  async pruneRuns(days: number): Promise<number> {
    const r = await this.database.readPool.query(
      `DELETE FROM pipeline_runs WHERE started_at < now() - $1 * interval '1 day'`,
      [days],
    );
    return r.rowCount ?? 0;
  }

  /** Ids of the series a filter selects (same tag semantics as the query API), at most `limit` + 1. */
  async seriesIds(
    filter: { metrics: string[] | null; sources: string[]; tags: TagFilter[] },
    limit: number,
  ): Promise<number[]> {
    const params: unknown[] = [];
    const conds: string[] = [];
    if (filter.metrics) conds.push(`metric = ANY($${params.push(filter.metrics)}::text[])`);
    if (filter.sources.length) conds.push(`source = ANY($${params.push(filter.sources)}::text[])`);
    conds.push(...tagConditions(filter.tags, params));
    const r = await this.database.readPool.query<{ id: number }>(
      `SELECT id FROM series ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''} ORDER BY id LIMIT $${params.push(limit + 1)}`,
      params,
    );
    return r.rows.map((x) => x.id);
  }

  /**
   * Aggregates raw points in PostgreSQL: one row per window, metric and group, with the requested
   * functions (tumbling windows that rollup tiers serve are read by storage's RollupReader instead). Tumbling windows (step = window) bucket with date_bin in one pass; overlapping or
   * spaced windows join each window end to its points.
   */
  async aggregate(q: AggregateQuery): Promise<AggregateRow[]> {
    if (q.seriesIds.length === 0 || q.ends.length === 0) return [];
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    const ids = p(q.seriesIds);
    // Group values are read once per series (not once per point), and buckets become epoch ms after grouping.
    const groupCols = q.groupBy
      .map((k, i) => `, ${k === SOURCE_KEY ? 'source' : `tags ->> ${p(k)}`} AS g${i}`)
      .join('');
    const groupRefs = q.groupBy.map((_, i) => `, s.g${i}`).join('');
    const plain = q.functions.filter((f) => !(f in PERCENTILES)) as Array<keyof typeof AGG_SQL>;
    const pcts = q.functions.filter((f) => f in PERCENTILES);
    const aggs = plain.map((f) => `${AGG_SQL[f]} AS "${f}"`);
    // Fractions from the closed set above, written as literals; one sort serves every percentile.
    if (pcts.length)
      aggs.push(
        `percentile_cont(ARRAY[${pcts.map((f) => PERCENTILES[f]).join(', ')}]::float8[]) WITHIN GROUP (ORDER BY p.value) AS pct`,
      );
    const range = `p.series_id = ANY(${ids}::int[]) AND p.time >= ${p(toIso(q.ends[0] - q.windowMs))}::timestamptz AND p.time < ${p(toIso(q.ends[q.ends.length - 1]))}::timestamptz`;
    const interval = p(`${q.windowMs / 1000} seconds`);
    const groupBy = ['1', '2', ...q.groupBy.map((_, i) => String(i + 3))].join(', ');
    // Tumbling windows: one pass with date_bin. Overlapping or spaced windows: each window end joined
    // to its points (an index range scan per end and series), labelled by the window start.
    const [bucket, from, shift] =
      q.stepMs === q.windowMs
        ? [`date_bin(${interval}::interval, p.time, timestamptz 'epoch')`, 'points p', '0']
        : [
            'e.t',
            `unnest(${p(q.ends.map(toIso))}::timestamptz[]) AS e(t) JOIN points p ON p.time >= e.t - ${interval}::interval AND p.time < e.t`,
            `${p(q.windowMs)}::float8`,
          ];
    const sql = `WITH s AS MATERIALIZED (SELECT id, metric${groupCols} FROM series WHERE id = ANY(${ids}::int[]))
      SELECT (extract(epoch FROM x.b) * 1000)::float8 - ${shift} AS t, x.* FROM (
        SELECT ${bucket} AS b, s.metric AS m${groupRefs}, ${aggs.join(', ')}
        FROM ${from} JOIN s ON s.id = p.series_id
        WHERE ${range}
        GROUP BY ${groupBy}
      ) x ORDER BY 1 LIMIT ${p(q.limit + 1)}`;
    return this.cells(q, await this.database.readPool.query<Record<string, unknown>>(sql, params), pcts);
  }

  private cells(q: AggregateQuery, r: { rows: Array<Record<string, unknown>> }, pcts: string[]): AggregateRow[] {
    return r.rows.map((row) => {
      const pct = row.pct as number[] | undefined;
      return {
        t: row.t as number,
        metric: row.m as string,
        group: q.groupBy.map((_, i) => (row[`g${i}`] as string | null) ?? null),
        values: q.functions.map((f) => {
          const v = f in PERCENTILES ? pct![pcts.indexOf(f)] : (row[f] as number | null);
          return v === null || v === undefined || !Number.isFinite(v) ? null : Number(v);
        }),
      };
    });
  }
}
