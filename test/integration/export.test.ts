import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import fsCjs, { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { ExportService } from '../../src/export/export.service.js';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { close, expectedBuckets, ingest, KnownPoint, prng } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';
import type { TestApp } from '../support/app.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Math.floor((Date.now() - 6 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const FROM = T0,
  TO = T0 + 2 * HOUR;

/** Two series with tag values a spreadsheet would run, commas and quotes; a third outside the range. */
function dataset(): KnownPoint[] {
  const rnd = prng(3);
  const pts: KnownPoint[] = [];
  for (let t = T0; t < T0 + 2 * HOUR; t += 30_000) {
    pts.push({
      metric: 'cpu_usage',
      source: 'fl_server',
      tags: { host: 'fl-server-01', experiment_id: 'exp_001' },
      t,
      v: Math.round(rnd() * 10_000) / 100 - 20,
    });
    if (t % MIN === 0)
      pts.push({
        metric: 'cpu_usage',
        source: '+evil',
        tags: { host: "=cmd|' /C calc'!A0", note: 'a, "quoted" one' },
        t: t + 1,
        v: rnd(),
      });
  }
  pts.push({
    metric: 'cpu_usage',
    source: 'fl_server',
    tags: { host: 'fl-server-01', experiment_id: 'exp_001' },
    t: T0 + 3 * HOUR,
    v: 1,
  });
  pts.push({ metric: 'mem', source: 'fl_server', tags: {}, t: T0 + 10 * MIN, v: 512.5 });
  return pts;
}

/** RFC 4180 reader for the test: quoted cells with doubled quotes, commas and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [],
    cell = '',
    q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') q = false;
      else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  return rows;
}

async function raw(t: TestApp, url: string) {
  const res = await t.app.getHttpAdapter().getInstance().inject({ method: 'GET', url, headers: t.authHeaders });
  return { status: res.statusCode, headers: res.headers, body: res.rawPayload };
}

const tsOf = (v: unknown) =>
  v instanceof Date ? v.getTime() : typeof v === 'bigint' ? Number(v) / 1000 : Date.parse(String(v));

const EXPORT_DIR = mkdtempSync(join(tmpdir(), 'timescope-exports-'));
after(() => rmSync(EXPORT_DIR, { recursive: true, force: true }));

describeEachFlavour(
  'export',
  (ctx) => {
    const points = dataset();
    const inRange = points
      .filter((p) => p.metric === 'cpu_usage' && p.t >= FROM && p.t < TO)
      .sort((a, b) => a.t - b.t || (a.source === 'fl_server' ? -1 : 1));
    const qs = `metric=cpu_usage&from=${iso(FROM)}&to=${iso(TO)}`;
    before(() => ingest(ctx.t, points));

    it('streams CSV with the reference columns, a file name, and formula cells neutralised', async () => {
      const r = await raw(ctx.t, `/api/v1/metrics/export?format=csv&${qs}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-disposition'], 'attachment; filename="cpu_usage_export.csv"');
      assert.match(String(r.headers['content-type']), /^text\/csv/);
      const rows = parseCsv(r.body.toString('utf8'));
      assert.deepEqual(rows[0], ['timestamp', 'value', 'source', 'experiment_id', 'host', 'note']);
      assert.equal(rows.length - 1, inRange.length);
      rows.slice(1).forEach((row, i) => {
        const p = inRange[i];
        assert.equal(Date.parse(row[0]), p.t, `row ${i} time`);
        assert.equal(Number(row[1]), p.v);
        if (p.source === 'fl_server') assert.deepEqual(row.slice(2), ['fl_server', 'exp_001', 'fl-server-01', '']);
        else assert.deepEqual(row.slice(2), ["'+evil", '', "'=cmd|' /C calc'!A0", 'a, "quoted" one']);
      });
    });

    it('keeps microseconds where a point has them', async () => {
      const t = new Date(T0 + 5 * HOUR).toISOString().replace('.000Z', '.000123Z');
      assert.equal(
        (await ctx.t.post('/api/v1/metrics', { source: 's', metrics: [{ name: 'precise', value: 1, timestamp: t }] }))
          .status,
        200,
      );
      const r = await raw(
        ctx.t,
        `/api/v1/metrics/export?format=csv&metric=precise&from=${iso(T0)}&to=${iso(TO + 4 * HOUR)}`,
      );
      assert.equal(parseCsv(r.body.toString('utf8'))[1][0], t);
    });

    it('streams JSON and NDJSON records that read back as the stored points', async () => {
      const j = await raw(ctx.t, `/api/v1/metrics/export?format=json&${qs}`);
      assert.equal(j.headers['content-disposition'], 'attachment; filename="cpu_usage_export.json"');
      const records = JSON.parse(j.body.toString('utf8'));
      const nd = await raw(ctx.t, `/api/v1/metrics/export?format=ndjson&${qs}`);
      const lines = nd.body
        .toString('utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      for (const list of [records, lines]) {
        assert.equal(list.length, inRange.length);
        list.forEach(
          (
            rec: { timestamp: string; value: number; source: string; tags: Record<string, string>; metric: string },
            i: number,
          ) => {
            assert.equal(Date.parse(rec.timestamp), inRange[i].t);
            assert.equal(rec.value, inRange[i].v);
            assert.equal(rec.source, inRange[i].source);
            assert.deepEqual(rec.tags, inRange[i].tags);
            assert.equal(rec.metric, 'cpu_usage');
          },
        );
      }
    });

    it('streams Parquet that a standard reader (hyparquet) reads back as the stored points', async () => {
      const r = await raw(ctx.t, `/api/v1/metrics/export?format=parquet&${qs}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-disposition'], 'attachment; filename="cpu_usage_export.parquet"');
      const buf = r.body;
      const rows = (await parquetReadObjects({
        file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer,
      })) as Array<Record<string, unknown>>;
      assert.equal(rows.length, inRange.length);
      rows.forEach((row, i) => {
        const p = inRange[i];
        assert.equal(tsOf(row.timestamp), p.t, `row ${i}`);
        assert.equal(row.value, p.v);
        assert.equal(row.source, p.source);
        assert.equal(row.host, p.tags.host);
        assert.equal(row.note ?? undefined, p.tags.note);
      });
    });

    it('exports buckets per series with granularity and aggregation, as /metrics/query computes them', async () => {
      const r = await raw(
        ctx.t,
        `/api/v1/metrics/export?format=ndjson&${qs}&granularity=15m&aggregation=max&source=fl_server`,
      );
      assert.equal(r.status, 200);
      const got = r.body
        .toString('utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const want = expectedBuckets(
        inRange.filter((p) => p.source === 'fl_server'),
        FROM,
        TO,
        15 * MIN,
        'max',
      );
      assert.equal(got.length, want.length);
      got.forEach((g, i) => {
        assert.equal(Date.parse(g.timestamp), want[i].t);
        assert.ok(close(g.value, want[i].v));
      });
    });

    it('exports an empty range as a header or an empty list', async () => {
      const r = await raw(
        ctx.t,
        `/api/v1/metrics/export?format=csv&metric=cpu_usage&from=${iso(T0 - 2 * HOUR)}&to=${iso(T0 - HOUR)}`,
      );
      assert.equal(r.body.toString('utf8'), 'timestamp,value,source,experiment_id,host,note\n');
      const j = await raw(
        ctx.t,
        `/api/v1/metrics/export?format=json&metric=cpu_usage&from=${iso(T0 - 2 * HOUR)}&to=${iso(T0 - HOUR)}`,
      );
      assert.deepEqual(JSON.parse(j.body.toString('utf8')), []);
    });

    it('exports an empty range as Parquet that a reader opens, with the columns and no rows', async () => {
      const r = await raw(
        ctx.t,
        `/api/v1/metrics/export?format=parquet&metric=cpu_usage&from=${iso(T0 - 2 * HOUR)}&to=${iso(T0 - HOUR)}`,
      );
      assert.equal(r.status, 200);
      const file = r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + r.body.byteLength) as ArrayBuffer;
      const meta = parquetMetadata(file);
      assert.equal(Number(meta.num_rows), 0);
      assert.deepEqual(
        meta.schema.slice(1).map((c) => c.name),
        ['timestamp', 'value', 'source', 'experiment_id', 'host', 'note'],
      );
      assert.deepEqual(await parquetReadObjects({ file }), []);
    });

    /** Starts an asynchronous export of cpu_usage over [FROM, TO) and waits until it has finished (or 5 s). */
    const finishedExport = async (format: string) => {
      const started = await ctx.t.post('/api/v1/metrics/exports', {
        metric: 'cpu_usage',
        from: iso(FROM),
        to: iso(TO),
        format,
      });
      assert.equal(started.status, 202, started.body);
      const id: string = started.json.export_id;
      let status = started.json;
      for (let i = 0; i < 100 && status.status !== 'completed' && status.status !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await ctx.t.get(`/api/v1/metrics/exports/${id}`)).json;
      }
      return { id, status };
    };

    it('runs an asynchronous export with progress, then serves its file', async () => {
      const { id, status } = await finishedExport('csv');
      assert.match(id, /^exp_\d{8}_\d{6}_[0-9a-f]{8}$/);
      assert.equal(status.status, 'completed', JSON.stringify(status));
      assert.equal(status.records_count, inRange.length);
      assert.equal(status.progress.percent, 100);
      assert.equal(status.download_url, `/api/v1/metrics/exports/${id}/download`);
      const file = await raw(ctx.t, status.download_url);
      assert.equal(file.status, 200);
      assert.equal(file.body.length, status.file_size_bytes);
      assert.equal(file.headers['content-disposition'], 'attachment; filename="cpu_usage_export.csv"');
      const streamed = await raw(ctx.t, `/api/v1/metrics/export?format=csv&${qs}`);
      assert.ok(file.body.equals(streamed.body), 'the file equals the streamed export');
      const health = await ctx.t.get('/health');
      assert.deepEqual(health.json.components.exports, {
        status: 'running',
        running: 0,
        waiting: 0,
        max_concurrent: 2,
        clients_cut_off: 0,
      });
      const listed = await ctx.t.get('/api/v1/metrics/exports');
      assert.ok(listed.json.exports.some((e: { export_id: string }) => e.export_id === id));

      // Past EXPORT_TTL_HOURS the cleanup job removes the row and the file.
      assert.ok(readdirSync(EXPORT_DIR).some((f) => f.startsWith(id)));
      await ctx.t.sql.query(`UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = $1`, [id]);
      const job = await ctx.t.runJob('export-cleanup');
      assert.ok(job.details.deleted >= 1);
      assert.equal((await ctx.t.get(`/api/v1/metrics/exports/${id}`)).status, 404);
      assert.ok(!readdirSync(EXPORT_DIR).some((f) => f.startsWith(id)));
      assert.ok(existsSync(EXPORT_DIR));
    });

    it("answers the reference's GET /export/metrics (start_date, end_date, metrics) with the export's record", async () => {
      const r = await ctx.t.get(
        `/api/v1/export/metrics?start_date=${iso(FROM)}&end_date=${iso(TO)}&metrics=cpu_usage,mem`,
      );
      assert.equal(r.status, 200, r.body);
      for (const k of ['export_id', 'status', 'download_url', 'file_size_bytes', 'records_count', 'generated_at'])
        assert.ok(k in r.json, k);
      assert.equal(r.json.status, 'completed');
      assert.equal(r.json.format, 'json');
      assert.equal(r.json.records_count, inRange.length + 1);
      const file = await raw(ctx.t, r.json.download_url);
      const records = JSON.parse(file.body.toString('utf8'));
      assert.equal(records.length, inRange.length + 1);
      assert.ok(records.some((x: { metric: string; value: number }) => x.metric === 'mem' && x.value === 512.5));
      assert.equal(file.headers['content-disposition'], 'attachment; filename="metrics_export.json"');
    });

    it('answers bad requests with 400 naming the parameter, unknown things with 404', async () => {
      const cases: Array<[string, string]> = [
        [`/api/v1/metrics/export?format=xml&${qs}`, 'format'],
        [`/api/v1/metrics/export?metric=cpu_usage&to=${iso(TO)}`, 'from'],
        [`/api/v1/metrics/export?metric=cpu_usage&from=${iso(FROM)}`, 'to'],
        [`/api/v1/metrics/export?from=${iso(FROM)}&to=${iso(TO)}`, 'metric'],
        [`/api/v1/metrics/export?${qs}&granularity=1q`, 'granularity'],
        [`/api/v1/metrics/export?${qs}&aggregation=max`, 'aggregation'],
        [`/api/v1/metrics/export?metric=cpu_usage&from=${iso(TO)}&to=${iso(FROM)}`, 'from'],
        [`/api/v1/export/metrics?start_date=${iso(FROM)}`, 'end_date'],
        [`/api/v1/export/metrics?start_date=yesterday&end_date=${iso(TO)}`, 'start_date'],
      ];
      for (const [url, parameter] of cases) {
        const r = await ctx.t.get(url);
        assert.equal(r.status, 400, `${url}: ${r.body}`);
        assert.equal(r.json.error.details.parameter, parameter, url);
      }
      assert.equal((await ctx.t.get(`/api/v1/metrics/export?metric=nope&from=${iso(FROM)}&to=${iso(TO)}`)).status, 404);
      assert.equal((await ctx.t.get('/api/v1/metrics/exports/exp_nope')).status, 404);
      assert.equal((await ctx.t.get('/api/v1/metrics/exports/exp_nope/download')).status, 404);
      const bad = await ctx.t.post('/api/v1/metrics/exports', {
        metric: 'cpu_usage',
        from: iso(FROM),
        to: iso(TO),
        format: 'xls',
      });
      assert.equal(bad.json.error.details.parameter, 'format');
    });

    it('fails an asynchronous export whose disk is full, closing its file, and the service goes on', async () => {
      // The disk, not the database, is what fails here: every write of an export file gets ENOSPC
      // a moment later (as a full disk answers a write that was buffered).
      const real = fsCjs.createWriteStream;
      fsCjs.createWriteStream = ((path: string, opts?: unknown) => {
        const w = real(path, opts as undefined);
        if (path.startsWith(EXPORT_DIR)) {
          const full = (cb: (err: Error) => void) =>
            setTimeout(
              () => cb(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })),
              5,
            );
          // Both ways a file stream writes: one chunk, or several buffered ones at once.
          w._write = (_c, _e, cb) => full(cb);
          w._writev = (_chunks, cb) => full(cb);
        }
        return w;
      }) as typeof real;
      syncBuiltinESMExports();
      try {
        const { id, status } = await finishedExport('parquet');
        assert.equal(status.status, 'failed', JSON.stringify(status));
        assert.match(status.error, /ENOSPC/);
        assert.ok(!readdirSync(EXPORT_DIR).some((f) => f.startsWith(id)), 'the partial file is gone');
        const open = readdirSync('/proc/self/fd').filter((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`).includes(id);
          } catch {
            return false;
          }
        });
        assert.deepEqual(open, [], 'no descriptor is left on the deleted file');
      } finally {
        fsCjs.createWriteStream = real;
        syncBuiltinESMExports();
      }
      assert.equal((await ctx.t.get('/health/live')).status, 200);
    });

    it('marks failed at start only the unfinished exports whose process is gone, not those of another instance on the host', async () => {
      const other = spawn('sleep', ['30']);
      const gone = spawn('true');
      await once(gone, 'exit');
      try {
        const row = (id: string, pid: number, createdAgo = '0 s') =>
          ctx.t.sql.query(
            `INSERT INTO exports (id, status, format, request, instance, file_name, created_at)
             VALUES ($1, 'running', 'csv', '{}', $2, 'x.csv', now() - $3::interval)`,
            [id, `${hostname()}:${pid}`, createdAgo],
          );
        await row('exp_orphan_test_dead', gone.pid!);
        await row('exp_orphan_test_live', other.pid!);
        // The same pid, but the process holding it started long after that export was asked for.
        await row('exp_orphan_test_reused', other.pid!, '1 hour');
        await ctx.t.app.get(ExportService).failOrphans();
        const status = async (id: string) =>
          (await ctx.t.sql.query(`SELECT status FROM exports WHERE id = $1`, [id])).rows[0].status;
        assert.equal(await status('exp_orphan_test_dead'), 'failed');
        assert.equal(await status('exp_orphan_test_live'), 'running', "another instance's export is left alone");
        assert.equal(await status('exp_orphan_test_reused'), 'failed', 'a reused pid is not the exporter');
      } finally {
        other.kill();
        await ctx.t.sql.query(`DELETE FROM exports WHERE id LIKE 'exp_orphan_test_%'`);
      }
    });
  },
  { EXPORT_DIR },
);

describeEachFlavour(
  'export of every metric past QUERY_MAX_SERIES',
  (ctx) => {
    before(async () => {
      const metrics = Array.from({ length: 6 }, (_, i) => ({ name: `m${i}`, value: i }));
      for (const source of ['a', 'b', 'c'])
        assert.equal((await ctx.t.post('/api/v1/metrics', { source, timestamp: iso(FROM), metrics })).status, 200);
    });

    it('applies source and tag filters before the cap, so that narrowing helps', async () => {
      const all = await ctx.t.post('/api/v1/metrics/exports', { from: iso(FROM), to: iso(TO) });
      assert.equal(all.status, 400, all.body);
      assert.match(all.json.error.message, /more than 10 series/);
      const one = await ctx.t.post('/api/v1/metrics/exports', { from: iso(FROM), to: iso(TO), source: 'b' });
      assert.equal(one.status, 202, one.body);
    });
  },
  { EXPORT_DIR, QUERY_MAX_SERIES: '10' },
);

describeEachFlavour(
  'export under load',
  (ctx) => {
    const N = 200_000;
    const T1 = T0 - 30 * HOUR;
    let base = '';
    before(async () => {
      if (ctx.flavour === 'timescaledb') return; // the test below runs on real PostgreSQL only
      const { PointBatchBuilder } = await import('../../src/storage/point-batch.js');
      const { PointWriter } = await import('../../src/storage/point-writer.js');
      for (let i = 0; i < N; i += 50_000) {
        const b = new PointBatchBuilder(50_000);
        const s = b.addSeries('big', 'h', { k: 'v' }, null);
        for (let j = i; j < i + 50_000; j++) b.push(s, T1 + j * 100, j);
        await ctx.t.app.get(PointWriter).write(b.build());
      }
      base = `http://127.0.0.1:${await ctx.t.listen()}`;
    });

    it('answers 503 + Retry-After past EXPORT_MAX_CONCURRENT, and frees the slot and connection when a client goes away', async (t) => {
      // A fault test: PGlite's socket server takes one connection at a time and refuses a new one
      // while it still tears down the one we dropped mid-COPY (reliability.md: PGlite is for SQL shape).
      if (ctx.flavour === 'timescaledb') return t.skip('fault test: real PostgreSQL only');
      const url = `${base}/api/v1/metrics/export?format=csv&metric=big&from=${iso(T1)}&to=${iso(T1 + N * 100)}`;
      const abort = new AbortController();
      const first = await fetch(url, { signal: abort.signal });
      assert.equal(first.status, 200);
      const reader = first.body!.getReader();
      await reader.read(); // the export is under way, its slot taken
      const second = await fetch(url);
      assert.equal(second.status, 503);
      assert.equal(second.headers.get('retry-after'), '5');
      assert.equal(((await second.json()) as { error: { code: string } }).error.code, 'SERVICE_UNAVAILABLE');
      // HEAD answers GET's headers without running an export, so it needs no slot.
      const head = await fetch(url, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.match(head.headers.get('content-disposition') ?? '', /^attachment; filename="big_.*\.csv"$/);
      assert.equal(head.headers.get('content-type'), 'text/csv; charset=utf-8');
      abort.abort();
      await reader.cancel().catch(() => undefined);
      // The slot comes back once the server sees the client gone; then a whole export runs to the end.
      const third = await fetchWhenFree(url);
      assert.equal(third.status, 200);
      const text = await third.text();
      assert.equal(text.trim().split('\n').length, N + 1);
      // And the database still answers (the abandoned COPY's connection was thrown away, not reused mid-stream).
      assert.equal(
        (await ctx.t.get('/api/v1/metrics/summary?metric=big&from=' + iso(T1) + '&to=' + iso(T1 + N * 100))).json
          .statistics.count,
        N,
      );
    });

    it('gives the slot and the connection back however often and whenever clients hang up', async (t) => {
      if (ctx.flavour === 'timescaledb') return t.skip('fault test: real PostgreSQL only');
      const path = `/api/v1/metrics/export?format=csv&metric=big&from=${iso(T1)}&to=${iso(T1 + N * 100)}`;
      const { port } = new URL(base);
      // Hang up at every stage: while the server still resolves the series (before it has even
      // started the body), on the headers, and after a first chunk. Each must hand its slot back.
      const hangUp = (when: 'request' | 'headers' | 'chunk', delayMs = 0) =>
        new Promise<void>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port, path, agent: false });
          const end = () => (req.destroy(), resolve());
          req.on('error', () => resolve());
          if (when === 'request') req.on('finish', () => setTimeout(end, delayMs));
          else req.on('response', (res) => (when === 'headers' ? end() : res.once('data', end)));
        });
      const health = async () => (await ctx.t.get('/health')).json.components.exports;
      /** No slot held, seen three times in a row (a hung-up request may reach the server late). */
      const idle = async (after: string) => {
        await new Promise((r) => setTimeout(r, 200));
        let last: unknown,
          zeros = 0;
        for (let i = 0; i < 100 && zeros < 3; i++) {
          await new Promise((r) => setTimeout(r, 50));
          last = await health();
          zeros = (last as { running: number }).running === 0 ? zeros + 1 : 0;
        }
        assert.deepEqual(
          last,
          { status: 'running', running: 0, waiting: 0, max_concurrent: 1, clients_cut_off: 0 },
          after,
        );
      };
      for (const delay of [0, 1, 2, 5, 10]) {
        await hangUp('request', delay);
        await idle(`a hang-up ${delay} ms after the request`);
      }
      for (let i = 0; i < 3; i++) {
        await hangUp('headers');
        await idle('a hang-up on the headers');
        await hangUp('chunk');
        await idle('a hang-up after a chunk');
      }
      // A whole export still runs, and no connection of the read pool is left checked out.
      const whole = await fetch(`${base}${path}`);
      assert.equal(whole.status, 200);
      assert.equal((await whole.text()).trim().split('\n').length, N + 1);
      await idle('a whole export');
      const pool = ctx.t.sql;
      assert.equal(pool.totalCount - pool.idleCount, 0, 'no read connection is left checked out');
    });
  },
  { EXPORT_DIR, EXPORT_MAX_CONCURRENT: '1', METRICS_RETENTION_DAYS: '0', AUTH: 'off' },
);

describeEachFlavour(
  'export when the database goes away mid-stream',
  (ctx) => {
    const N = 100_000;
    const T1 = T0 - 30 * HOUR;
    let url = '';
    before(async () => {
      const { PointBatchBuilder } = await import('../../src/storage/point-batch.js');
      const { PointWriter } = await import('../../src/storage/point-writer.js');
      const b = new PointBatchBuilder(N);
      const s = b.addSeries('big', 'h', {}, null);
      for (let j = 0; j < N; j++) b.push(s, T1 + j * 100, j);
      await ctx.t.app.get(PointWriter).write(b.build());
      const port = await ctx.t.listen();
      url = `http://127.0.0.1:${port}/api/v1/metrics/export?format=csv&metric=big&from=${iso(T1)}&to=${iso(T1 + N * 100)}`;
    });

    it('ends the download and gives the slot back when the connection drops under a COPY', async () => {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read(); // the COPY is under way
      ctx.t.proxy!.cut();
      // The body stops short (an error or a truncated end), it never hangs.
      await assert.rejects(async () => {
        for (;;) if ((await reader.read()).done) throw new Error('ended');
      });
      ctx.t.proxy!.restore();
      let exports: { running: number } = { running: -1 };
      for (let i = 0; i < 100; i++) {
        const h = await ctx.t.get('/health');
        exports = h.json?.components?.exports ?? exports;
        if (exports.running === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(exports.running, 0);
      // With the database back, a whole export runs (EXPORT_MAX_CONCURRENT=1: no slot is lost).
      const whole = await fetchWhenFree(url);
      assert.equal(whole.status, 200);
      assert.equal((await whole.text()).trim().split('\n').length, N + 1);
    });
  },
  { EXPORT_DIR, EXPORT_MAX_CONCURRENT: '1', METRICS_RETENTION_DAYS: '0', AUTH: 'off' },
  { proxy: true, flavours: ['postgresql'] },
);

/**
 * One series with 4 tags of 200 characters: every CSV row is about 850 bytes, so 30,000 points
 * make a 25 MB download, far more than the kernel buffers (a few MB on loopback) hold for a
 * client, in chunks of a few MB (one per COPY message): the COPY is still under way when the
 * client stops reading. Stores the series before the suite's tests and listens on a port; gives
 * the export's path, the port, and `download()`: a raw HTTP/1.1 client that sends the request
 * and resolves on the first bytes of the answer.
 */
function fatExport(ctx: { t: TestApp }) {
  const N = 30_000;
  const T1 = T0 - 30 * HOUR;
  const tags = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`k${i}`, `${i}`.repeat(200)]));
  const fat = {
    N,
    T1,
    path: `/api/v1/metrics/export?format=csv&metric=fat&from=${iso(T1)}&to=${iso(T1 + N * 1000)}`,
    port: 0,
    async download() {
      const socket = net.connect(fat.port, '127.0.0.1');
      socket.on('error', () => undefined);
      const closed = once(socket, 'close');
      await once(socket, 'connect');
      socket.write(`GET ${fat.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ctx.t.adminKey}\r\n\r\n`);
      const [first] = (await once(socket, 'data')) as [Buffer];
      assert.match(first.toString('latin1'), /^HTTP\/1\.1 200 /);
      return { socket, closed };
    },
  };
  before(async () => {
    const { PointBatchBuilder } = await import('../../src/storage/point-batch.js');
    const { PointWriter } = await import('../../src/storage/point-writer.js');
    const b = new PointBatchBuilder(N);
    const s = b.addSeries('fat', 'h', tags, null);
    for (let j = 0; j < N; j++) b.push(s, T1 + j * 1000, j);
    await ctx.t.app.get(PointWriter).write(b.build());
    fat.port = await ctx.t.listen();
  });
  return fat;
}

describeEachFlavour(
  'export to a client that stops reading',
  (ctx) => {
    const fat = fatExport(ctx);
    const { T1 } = fat;
    const download = () => fat.download();
    const exportsHealth = async () =>
      (await ctx.t.get('/health')).json.components.exports as { running: number; clients_cut_off: number };

    it('cuts off a download whose client stops reading, and gives its slot and connection back', async () => {
      const { socket, closed } = await download();
      socket.pause(); // the client stops reading: the kernel buffers fill, then the server's
      const t0 = performance.now();
      assert.equal((await exportsHealth()).running, 1);
      await waitFor(async () => (await exportsHealth()).running === 0, 10_000, 'the stalled download to be cut off');
      const waited = performance.now() - t0;
      assert.ok(waited >= 1_000, `cut off after ${Math.round(waited)} ms, before EXPORT_STALL_SECONDS`);
      assert.equal((await exportsHealth()).clients_cut_off, 1);
      // No connection of the read pool is checked out, and the COPY is gone from the server.
      const pool = ctx.t.sql;
      await waitFor(() => pool.totalCount - pool.idleCount === 0, 5_000, 'the read connection to come back');
      const copies = async () =>
        (
          await pool.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY (SELECT series_id%' AND pid <> pg_backend_pid()`,
          )
        ).rows[0].n;
      await waitFor(async () => (await copies()) === 0, 5_000, 'the COPY to end on the server');
      // The client, reading again, gets what the kernels held, then the end: a truncated chunked body.
      let tail = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => (tail = Buffer.concat([tail.subarray(-16), d])));
      socket.resume();
      await closed;
      assert.ok(!tail.toString('latin1').endsWith('0\r\n\r\n'), 'the body is not a complete chunked response');
      // The slot is free: the next export (a small range) is served.
      const next = await fetch(
        `http://127.0.0.1:${fat.port}/api/v1/metrics/export?format=csv&metric=fat&from=${iso(T1)}&to=${iso(T1 + 2000)}`,
        { headers: ctx.t.authHeaders },
      );
      assert.equal(next.status, 200);
      assert.equal((await next.text()).trim().split('\n').length, 3);
    });

    it('keeps a client that reads slowly but steadily', async () => {
      const before = (await exportsHealth()).clients_cut_off;
      const { socket, closed } = await download();
      // At most one socket read (64 KB) every 100 ms: a hundred times slower than the server
      // produces, so its buffers stay full throughout, for three times EXPORT_STALL_SECONDS. (Only
      // what the kernel lets the server write again would show progress every 2-3 s here.)
      let bytes = 0;
      socket.on('data', (d: Buffer) => {
        bytes += d.length;
        socket.pause();
        setTimeout(() => socket.resume(), 100);
      });
      await new Promise((r) => setTimeout(r, 3_000));
      const h = await exportsHealth();
      assert.deepEqual(
        [h.clients_cut_off - before, h.running],
        [0, 1],
        `the slow client was cut off after ${bytes} bytes`,
      );
      assert.equal(socket.destroyed, false);
      assert.ok(bytes > 64 * 1024 && bytes < 5_000_000, `read ${bytes} bytes`);
      socket.destroy();
      await closed;
      await waitFor(async () => (await exportsHealth()).running === 0, 5_000, 'the slot to come back');
    });
  },
  // PostgreSQL only: a cut-off drops the read connection mid-COPY, which PGlite's one-connection
  // socket server is slow to recover from (see the hang-up tests above).
  { EXPORT_DIR, EXPORT_MAX_CONCURRENT: '1', EXPORT_STALL_SECONDS: '1', METRICS_RETENTION_DAYS: '0' },
  { flavours: ['postgresql'] },
);

describeEachFlavour(
  'exports that hold their reads, beside the rest of the API',
  (ctx) => {
    const fat = fatExport(ctx);

    it('keeps the catalogue and the control plane answering while EXPORT_MAX_CONCURRENT downloads stall, and refuses one more at once', async () => {
      // Two clients stop reading (the default EXPORT_MAX_CONCURRENT): both COPYs stay under way.
      // They once held both connections of the general pool, so /metrics/names and a third export
      // waited DB_CONNECT_TIMEOUT_MS for one and answered "the database is unreachable".
      const stalled = [await fat.download(), await fat.download()];
      for (const d of stalled) d.socket.pause();
      try {
        const names = await ctx.t.get('/api/v1/metrics/names');
        assert.equal(names.status, 200, names.body);
        assert.ok(
          names.json.metrics.some((m: { name: string }) => m.name === 'fat'),
          names.body,
        );
        const keys = await ctx.t.get('/api/v1/auth/keys');
        assert.equal(keys.status, 200, keys.body);
        const third = await ctx.t.get(fat.path);
        assert.equal(third.status, 503, third.body);
        assert.match(third.json.error.message, /2 exports are running \(EXPORT_MAX_CONCURRENT\)/);
      } finally {
        for (const d of stalled) d.socket.destroy();
        await Promise.all(stalled.map((d) => d.closed));
      }
      await waitFor(
        async () => (await ctx.t.get('/health')).json.components.exports.running === 0,
        5_000,
        'the slots to come back',
      );
    });
  },
  // PostgreSQL only: PGlite serves one session, so there exports share its one connection.
  { EXPORT_DIR, EXPORT_MAX_CONCURRENT: '2', EXPORT_STALL_SECONDS: '60', METRICS_RETENTION_DAYS: '0' },
  { flavours: ['postgresql'] },
);

/** GET `url` until an export slot is free (not 503), for up to 5 s; the last reply. */
async function fetchWhenFree(url: string): Promise<Response> {
  let r = await fetch(url);
  for (let i = 0; i < 50 && r.status === 503; i++) {
    await r.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 100));
    r = await fetch(url);
  }
  return r;
}
