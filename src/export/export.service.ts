import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, promises as fs, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError, invalidQuery, notFound, serviceUnavailable } from '../common/errors.js';
import { cutOffWhenStalled } from '../common/stall-clock.js';
import { toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { JobsService } from '../jobs/jobs.service.js';
import { HealthService } from '../system/health.service.js';
import { QueryService } from '../query/query.service.js';
import type { PointColumns } from './copy-decoder.js';
import { encoderFor, ExportEncoder, ExportLayout } from './encoders.js';
import { exportFileName, ExportSpec, parseExportSpec } from './export-request.js';
import { ExportRepository, ExportRow } from './export.repository.js';
import { PointReader, SeriesInfo } from './point-reader.js';
import { releasingStream } from './releasing-stream.js';

const INSTANCE = `${hostname()}:${process.pid}`;

/**
 * Whether the process that created an export at `createdAt` on this host still runs as `pid`. A
 * process holding that pid now but started after the export was created (a pid reused after a
 * restart or a reboot) is not it: on Linux its start time says so (/proc). Elsewhere only whether
 * some process holds the pid is known.
 */
export function exportOwnerAlive(pid: number, createdAt: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false; // an export of this pid before this process started: a restart reused it
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: it runs, under another user
  }
  const started = processStartedAt(pid);
  return started === undefined || started <= createdAt + 5_000; // slack: /proc's boot time is whole seconds
}

/** When process `pid` started, epoch ms, from /proc (Linux); undefined where that cannot be read. */
export function processStartedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name (which may hold spaces and parentheses): clock ticks since boot.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const boot = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    // USER_HZ, the unit of /proc's clock ticks, is 100 on every Linux architecture Node runs on.
    return Number.isFinite(ticks) && Number.isFinite(boot) ? boot * 1000 + ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}
/** How long the reference's GET /export/metrics waits for an export before answering 202 with its progress. */
const SYNC_WAIT_MS = 5_000;
const PROGRESS_EVERY_MS = 1_000;

interface Selection {
  spec: ExportSpec;
  ids: number[];
  series: Map<number, SeriesInfo>;
  layout: ExportLayout;
  encoder: ExportEncoder;
  fileName: string;
}

export interface StreamedExport {
  fileName: string;
  contentType: string;
  body: Readable;
}

/**
 * Exports: streamed (GET /metrics/export: the bytes go to the client as PostgreSQL produces the
 * rows, one chunk in memory at a time) and asynchronous (a file written in the background, with
 * progress, downloaded later). At most EXPORT_MAX_CONCURRENT run at once, each on one read
 * connection; a streamed export past that answers 503 + Retry-After, an asynchronous one waits.
 * A download whose client stops reading is cut off after EXPORT_STALL_SECONDS, so it cannot keep
 * its slot and connection for ever.
 */
@Injectable()
export class ExportService implements OnModuleInit {
  private readonly logger = new Logger('export');
  private active = 0;
  private cutOff = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly running = new Map<string, Promise<void>>();

  constructor(
    private readonly queries: QueryService,
    private readonly reader: PointReader,
    private readonly repo: ExportRepository,
    private readonly jobs: JobsService,
    private readonly health: HealthService,
    private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    const failed = await this.failOrphans().catch(() => 0);
    if (failed) this.logger.warn(`${failed} export(s) left unfinished by an earlier run were marked failed`);
    // A full export queue is not a fault: it shows how busy exports are, never degrades the service.
    this.health.register('exports', () => ({
      status: 'running',
      level: 'healthy',
      running: this.active,
      waiting: this.waiting.length,
      max_concurrent: this.config.analytics.exportMaxConcurrent,
      clients_cut_off: this.cutOff,
    }));
    this.jobs.register({
      name: 'export-cleanup',
      description: 'Deletes asynchronous exports (rows and files) older than EXPORT_TTL_HOURS',
      every: () => 3_600_000,
      run: async ({ client }) => {
        const gone = await this.repo.deleteExpired(client);
        for (const g of gone)
          if (g.file_name && g.instance.startsWith(`${hostname()}:`))
            await fs.rm(this.filePath(g.id, g.file_name), { force: true });
        return { deleted: gone.length };
      },
    });
  }

  /**
   * Marks failed the unfinished exports of this host whose process is gone (an earlier run of this
   * service that stopped or crashed). Another instance running on the same host keeps its own.
   */
  async failOrphans(): Promise<number> {
    const host = `${hostname()}:`;
    const orphans = (await this.repo.unfinished())
      .filter(
        (e) =>
          e.instance.startsWith(host) &&
          !exportOwnerAlive(Number(e.instance.slice(host.length)), e.created_at.getTime()),
      )
      .map((e) => e.id);
    return this.repo.failInterrupted(orphans);
  }

  // ---- streamed ----

  /** `headersOnly` (HEAD): what GET would answer, validated the same way, without running the export. */
  async stream(input: Record<string, unknown>, opts: { headersOnly?: boolean } = {}): Promise<StreamedExport> {
    const spec = parseExportSpec(input, Date.now(), this.queries.limits, {
      defaultFormat: 'csv',
      allowAllMetrics: false,
    });
    if (opts.headersOnly) {
      const sel = await this.select(spec);
      return { fileName: sel.fileName, contentType: sel.encoder.contentType, body: Readable.from([]) };
    }
    // The slot first: past EXPORT_MAX_CONCURRENT the answer is an immediate 503, before any read.
    if (!this.tryAcquire()) {
      throw serviceUnavailable(
        `${this.config.analytics.exportMaxConcurrent} exports are running (EXPORT_MAX_CONCURRENT); retry shortly or use POST /api/v1/metrics/exports`,
        5,
      );
    }
    let sel: Selection;
    try {
      sel = await this.select(spec);
    } catch (err) {
      this.release();
      throw err;
    }
    const body = releasingStream(
      (signal) => this.bytes(sel, () => undefined, signal),
      () => this.release(),
    );
    return { fileName: sel.fileName, contentType: sel.encoder.contentType, body };
  }

  /**
   * Guards a download being sent on `res`: when its client takes no bytes for EXPORT_STALL_SECONDS
   * while some wait for it, the connection and the body are destroyed, which gives back the
   * export's slot and read connection (the COPY is cancelled).
   */
  watch(x: StreamedExport, res: ServerResponse, client: string): void {
    const limitMs = this.config.analytics.exportStallMs;
    cutOffWhenStalled(res, limitMs, (sent) => {
      this.cutOff++;
      this.logger.warn(
        `download of ${x.fileName} to ${client} cut off: the client took no bytes for ${limitMs / 1000} s (EXPORT_STALL_SECONDS) after ${sent} bytes`,
      );
      x.body.destroy();
    });
  }

  // ---- asynchronous ----

  /** POST /metrics/exports: starts an export and answers at once (202) with where to follow it. */
  async start(body: unknown) {
    const spec = parseExportSpec((body ?? {}) as Record<string, unknown>, Date.now(), this.queries.limits, {
      defaultFormat: 'csv',
      allowAllMetrics: true,
    });
    const row = await this.launch(spec, body as Record<string, unknown>);
    return this.describe(row);
  }

  /** The reference's GET /export/metrics: starts an export, waits a few seconds; completed → 200, else 202 with progress. */
  async startAndWait(
    query: Record<string, unknown>,
  ): Promise<{ status: number; body: ReturnType<ExportService['describe']> }> {
    const spec = parseExportSpec(query, Date.now(), this.queries.limits, {
      defaultFormat: 'json',
      allowAllMetrics: true,
      rangeNames: ['start_date', 'end_date'],
    });
    const row = await this.launch(spec, query);
    const run = this.running.get(row.id);
    if (run) await Promise.race([run, new Promise((r) => setTimeout(r, SYNC_WAIT_MS).unref())]);
    const now = (await this.repo.get(row.id)) ?? row;
    return { status: now.status === 'completed' ? 200 : 202, body: this.describe(now) };
  }

  async status(id: string) {
    const row = await this.repo.get(id);
    if (!row) throw notFound(`No export ${id}`, { export_id: id });
    return this.describe(row);
  }

  async list() {
    const rows = await this.repo.list(100);
    return { exports: rows.map((r) => this.describe(r)), total: rows.length };
  }

  async download(id: string): Promise<StreamedExport> {
    const row = await this.repo.get(id);
    if (!row) throw notFound(`No export ${id}`, { export_id: id });
    if (row.status === 'failed')
      throw new ApiError(409, 'CONFLICT', `Export ${id} failed: ${row.error}`, { export_id: id, status: row.status });
    if (row.status !== 'completed')
      throw new ApiError(
        409,
        'CONFLICT',
        `Export ${id} is ${row.status} (${Math.round(row.progress * 100)}%); download it once completed`,
        { export_id: id, status: row.status, progress: row.progress },
      );
    const path = this.filePath(row.id, row.file_name!);
    try {
      await fs.access(path);
    } catch {
      throw notFound(`The file of export ${id} is not on this instance (${row.instance}) or has expired`, {
        export_id: id,
      });
    }
    const encoder = encoderFor(row.format as ExportSpec['format'], { withMetric: false, tagKeys: [] });
    return { fileName: row.file_name!, contentType: encoder.contentType, body: createReadStream(path) };
  }

  describe(row: ExportRow) {
    return {
      export_id: row.id,
      status: row.status,
      format: row.format,
      download_url: row.status === 'completed' ? `/api/v1/metrics/exports/${row.id}/download` : null,
      status_url: `/api/v1/metrics/exports/${row.id}`,
      file_name: row.file_name,
      file_size_bytes: row.file_size_bytes,
      records_count: row.records_count,
      progress: { percent: Math.round(row.progress * 1000) / 10, records_written: row.records_count },
      created_at: row.created_at.toISOString(),
      started_at: row.started_at?.toISOString() ?? null,
      generated_at: row.finished_at && row.status === 'completed' ? row.finished_at.toISOString() : null,
      expires_at: row.expires_at?.toISOString() ?? null,
      error: row.error,
    };
  }

  private async launch(spec: ExportSpec, request: Record<string, unknown>): Promise<ExportRow> {
    const sel = await this.select(spec);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
    const id = `exp_${stamp}_${randomBytes(4).toString('hex')}`;
    const row = await this.repo.create(id, spec.format, request ?? {}, INSTANCE, sel.fileName);
    this.logger.log(`export ${id}: ${sel.ids.length} series, ${spec.format}, ${toIso(spec.from)} .. ${toIso(spec.to)}`);
    const run = this.runToFile(id, sel).finally(() => this.running.delete(id));
    this.running.set(id, run);
    return row;
  }

  private async runToFile(id: string, sel: Selection): Promise<void> {
    await this.acquire();
    const path = this.filePath(id, sel.fileName);
    const tmp = `${path}.part`;
    let records = 0;
    try {
      await this.repo.started(id);
      mkdirSync(this.config.analytics.exportDir, { recursive: true });
      let lastReport = performance.now();
      const onProgress = (rows: number, fraction: number) => {
        records = rows;
        if (performance.now() - lastReport < PROGRESS_EVERY_MS) return;
        lastReport = performance.now();
        void this.repo.progress(id, rows, fraction).catch(() => undefined);
      };
      // pipeline(): an error on either side (the read, or the disk: ENOSPC) fails the export and
      // closes the file, rather than an unhandled 'error' event or a descriptor left open.
      await pipeline(Readable.from(this.bytes(sel, onProgress)), createWriteStream(tmp));
      await fs.rename(tmp, path);
      const { size } = await fs.stat(path);
      await this.repo.completed(id, records, size, this.config.analytics.exportTtlMs);
      this.logger.log(`export ${id}: completed, ${records} records, ${size} bytes`);
    } catch (err) {
      this.logger.error(`export ${id} failed: ${(err as Error).message}`);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      await this.repo.failed(id, (err as Error).message, this.config.analytics.exportTtlMs).catch(() => undefined);
    } finally {
      this.release();
    }
  }

  // ---- shared ----

  /** Series of the export (404 for an unknown metric, as /metrics/query), their details and the layout. */
  private async select(spec: ExportSpec): Promise<Selection> {
    const max = this.config.query.maxSeries;
    let ids: number[];
    if (spec.metrics === null) {
      ids = await this.repo.allSeriesIds(max, spec.source, spec.tags);
    } else {
      const parts = await Promise.all(
        spec.metrics.map((metric) => this.queries.matchingSeries({ metric, source: spec.source, tags: spec.tags })),
      );
      ids = [...new Set(parts.flat())].sort((a, b) => a - b);
    }
    if (ids.length > max)
      throw invalidQuery(
        'metric',
        `The export matches more than ${max} series (QUERY_MAX_SERIES); filter by source or tags`,
        { max_series: max },
      );
    const series = ids.length ? await this.reader.seriesInfo(ids) : new Map<number, SeriesInfo>();
    if (spec.metrics === null) {
      // Every metric: the same source and tag filters as a selector, applied to the series rows.
      const keep = (s: SeriesInfo) =>
        (spec.source === undefined || s.source === spec.source) &&
        spec.tags.every((f) => f.values.includes(s.tags[f.key]));
      ids = ids.filter((id) => series.has(id) && keep(series.get(id)!));
      const kept = new Set(ids);
      for (const id of [...series.keys()]) if (!kept.has(id)) series.delete(id);
    }
    const tagKeys = [...new Set([...series.values()].flatMap((s) => Object.keys(s.tags)))].sort();
    const layout = { withMetric: spec.metrics === null || spec.metrics.length > 1, tagKeys };
    const encoder = encoderFor(spec.format, layout);
    return { spec, ids, series, layout, encoder, fileName: exportFileName(spec, encoder.extension) };
  }

  /** The export's bytes, chunk by chunk; `progress(records, fraction)` after each chunk. */
  private async *bytes(
    sel: Selection,
    progress: (records: number, fraction: number) => void,
    signal?: AbortSignal,
  ): AsyncGenerator<Buffer> {
    const { spec, ids, series, encoder } = sel;
    yield encoder.begin();
    let records = 0;
    const span = Math.max(1, spec.to - spec.from);
    if (!spec.buckets) {
      for await (const chunk of this.reader.stream(ids, spec.from, spec.to, {
        order: 'time',
        timeoutMs: this.config.analytics.exportTimeoutMs,
        signal,
        dedicated: true,
      })) {
        records += chunk.length;
        const out = encoder.encode(chunk, series);
        progress(records, Math.min(1, (chunk.times[chunk.length - 1] - spec.from) / span));
        if (out.length) yield out;
      }
    } else {
      // Buckets per series, through the query planner (rollups included), one series at a time.
      const b = spec.buckets;
      for (let k = 0; k < ids.length; k++) {
        signal?.throwIfAborted();
        const { rows } = await this.queries.bucketsOf([ids[k]], spec.from, spec.to, b.granularityMs, b.aggregation);
        const chunk: PointColumns = {
          seriesIds: new Int32Array(rows.length).fill(ids[k]),
          times: Float64Array.from(rows, (r) => r.t),
          values: Float64Array.from(rows, (r) => r.v ?? NaN),
          length: rows.length,
        };
        records += rows.length;
        const out = encoder.encode(chunk, series);
        progress(records, (k + 1) / ids.length);
        if (out.length) yield out;
      }
    }
    progress(records, 1);
    const tail = encoder.end();
    if (tail.length) yield tail;
  }

  private filePath(id: string, fileName: string): string {
    return join(this.config.analytics.exportDir, `${id}__${fileName}`);
  }

  private tryAcquire(): boolean {
    if (this.active >= this.config.analytics.exportMaxConcurrent) return false;
    this.active++;
    return true;
  }

  private acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes straight to the next waiting export
    else this.active--;
  }
}
