import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { before, it } from 'node:test';
import { PipelinesRepository } from '../../src/pipelines/pipelines.repository.js';
import { PipelineRunner } from '../../src/pipelines/pipeline-runner.service.js';
import type { WebhookRequest, WebhookResponse } from '../../src/webhooks/delivery.js';
import type { Resolver } from '../../src/webhooks/url-guard.js';
import { WebhookService } from '../../src/webhooks/webhook.service.js';
import { close, ingest, KnownPoint, prng } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const H0 = Math.floor((Date.now() - 5 * HOUR) / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Two hours of known points. cpu every 10 s on hosts a and b (b 5 s later, so no two points of a
 * metric share a time), cpu of an excluded experiment on host c, memory on a every 30 s and on b
 * every 20 s except in the second quarter hour, and disk.io (a name with a dot) on a each minute.
 */
function dataset(): KnownPoint[] {
  const rnd = prng(6);
  const v = (scale: number) => Math.round(rnd() * scale * 100) / 100;
  const pts: KnownPoint[] = [];
  for (let t = H0; t < H0 + 2 * HOUR; t += 10_000) {
    pts.push({ metric: 'cpu', source: 'node-1', tags: { host: 'a', experiment_id: 'exp_001' }, t, v: v(100) });
    pts.push({
      metric: 'cpu',
      source: 'node-2',
      tags: { host: 'b', experiment_id: 'exp_001' },
      t: t + 5_000,
      v: v(100),
    });
    pts.push({ metric: 'cpu', source: 'node-3', tags: { host: 'c', experiment_id: 'exp_002' }, t, v: v(100) });
    if (t % 30_000 === 0)
      pts.push({
        metric: 'memory',
        source: 'node-1',
        tags: { host: 'a', experiment_id: 'exp_001' },
        t,
        v: 400 + v(200),
      });
    if (t % 20_000 === 0 && !(t >= H0 + 15 * MIN && t < H0 + 30 * MIN))
      pts.push({
        metric: 'memory',
        source: 'node-2',
        tags: { host: 'b', experiment_id: 'exp_001' },
        t: t + 1_000,
        v: 300 + v(100),
      });
    if (t % MIN === 0)
      pts.push({ metric: 'disk.io', source: 'node-1', tags: { host: 'a', experiment_id: 'exp_001' }, t, v: v(10) });
  }
  return pts;
}

// ---- the independent computation

/** percentile_cont: linear interpolation between the closest ranks. */
function percentile(sorted: number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

function aggregate(fn: string, ps: KnownPoint[]): number | null {
  if (ps.length === 0) return fn === 'count' ? 0 : null;
  const vs = ps.map((p) => p.v);
  const byTime = [...ps].sort((x, y) => x.t - y.t);
  const sorted = [...vs].sort((a, b) => a - b);
  switch (fn) {
    case 'avg':
      return vs.reduce((s, x) => s + x, 0) / vs.length;
    case 'sum':
      return vs.reduce((s, x) => s + x, 0);
    case 'min':
      return sorted[0];
    case 'max':
      return sorted[sorted.length - 1];
    case 'count':
      return vs.length;
    case 'first':
      return byTime[0].v;
    case 'last':
      return byTime[byTime.length - 1].v;
    default:
      return percentile(sorted, Number(fn.slice(1)) / 100);
  }
}

interface ExpectedRow {
  start: number;
  group: Record<string, string | null>;
  values: Record<string, number | null>;
}

/** Windows ending at each multiple of `step` in (from, to]; groups by `groupBy`; `fn_metric` columns. */
function expectedRows(
  points: KnownPoint[],
  o: {
    from: number;
    to: number;
    window: number;
    step: number;
    metrics: string[];
    functions: string[];
    groupBy: string[];
    where?: (p: KnownPoint) => boolean;
  },
): ExpectedRow[] {
  const rows: ExpectedRow[] = [];
  const groupOf = (p: KnownPoint) => o.groupBy.map((k) => (k === 'source' ? p.source : (p.tags[k] ?? null)));
  for (let end = Math.floor(o.from / o.step) * o.step + o.step; end <= o.to; end += o.step) {
    const inWindow = points.filter(
      (p) => p.t >= end - o.window && p.t < end && o.metrics.includes(p.metric) && (o.where?.(p) ?? true),
    );
    const groups = new Map<string, KnownPoint[]>();
    for (const p of inWindow) {
      const key = JSON.stringify(groupOf(p));
      groups.set(key, [...(groups.get(key) ?? []), p]);
    }
    for (const key of [...groups.keys()].sort()) {
      const ps = groups.get(key)!;
      const values: Record<string, number | null> = {};
      for (const m of o.metrics)
        for (const fn of o.functions)
          values[`${fn}_${m.replace(/[^A-Za-z0-9_]/g, '_')}`] = aggregate(
            fn,
            ps.filter((p) => p.metric === m),
          );
      rows.push({
        start: end - o.window,
        group: Object.fromEntries(o.groupBy.map((k, i) => [k, (JSON.parse(key) as Array<string | null>)[i]])),
        values,
      });
    }
  }
  return rows;
}

interface WindowJson {
  window_start: string;
  window_end: string;
  rows: Array<{ group: Record<string, string | null>; values: Record<string, number | null> }>;
  points?: Array<{ metric: string; source: string; tags: Record<string, string>; timestamp: string; value: number }>;
}

/** The rows of a dry-run or run response, flattened, compared value by value. */
function assertRows(windows: WindowJson[], expected: ExpectedRow[], what: string) {
  const got = windows.flatMap((w) => w.rows.map((r) => ({ start: Date.parse(w.window_start), ...r })));
  assert.equal(got.length, expected.length, `${what}: ${got.length} rows, expected ${expected.length}`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i],
      e = expected[i];
    assert.equal(g.start, e.start, `${what}: row ${i}`);
    assert.deepEqual(g.group, e.group, `${what}: row ${i} at ${iso(g.start)}`);
    assert.deepEqual(Object.keys(g.values), Object.keys(e.values), `${what}: columns`);
    for (const [c, v] of Object.entries(e.values))
      assert.ok(
        close(g.values[c], v),
        `${what}: ${c} at ${iso(g.start)} ${JSON.stringify(g.group)}: ${g.values[c]} != ${v}`,
      );
  }
}

describeEachFlavour(
  'pipeline runs',
  (ctx) => {
    const points = dataset();
    const ALL = ['avg', 'sum', 'min', 'max', 'count', 'first', 'last', 'p50', 'p90', 'p95', 'p99'];
    const exp001 = (p: KnownPoint) => p.tags.experiment_id === 'exp_001';
    let service: PipelineRunner;
    const sent: WebhookRequest[] = [];
    let answers: WebhookResponse[] = [];

    const create = async (body: Record<string, unknown>) => {
      const r = await ctx.t.post('/api/v1/pipelines', body);
      assert.equal(r.status, 201, r.body);
      return r.json as { id: number; columns: string[] | null };
    };
    const dryRun = async (id: number, from: number, to: number) => {
      const r = await ctx.t.post(`/api/v1/pipelines/${id}/dry-run?from=${iso(from)}&to=${iso(to)}`);
      assert.equal(r.status, 200, r.body);
      return r.json;
    };
    const runs = async (id: number) => (await ctx.t.get(`/api/v1/pipelines/${id}/runs`)).json.runs as any[];

    before(async () => {
      await ingest(ctx.t, points);
      service = ctx.t.app.get(PipelineRunner);
      const webhooks = ctx.t.app.get(WebhookService);
      webhooks.useResolver((async (host: string) =>
        host === 'hooks.example.com' ? [{ address: '93.184.216.34', family: 4 }] : []) as Resolver);
      webhooks.useTransport(async (req) => {
        sent.push(req);
        return answers.shift() ?? { status: 200 };
      });
    });

    it('aggregates every function per window and group like an independent computation', async () => {
      const p = await create({
        name: 'every-function',
        pipeline: [
          { operation: 'filter', params: { metrics: ['cpu', 'memory'], tags: { experiment_id: 'exp_001' } } },
          { operation: 'aggregate', params: { window: '5m', functions: ALL, group_by: ['host'] } },
        ],
      });
      const json = await dryRun(p.id, H0, H0 + 2 * HOUR);
      assert.equal(json.total_windows, 24);
      assert.equal(json.windows.length, 24);
      assert.deepEqual(json.columns, p.columns);
      assertRows(
        json.windows,
        expectedRows(points, {
          from: H0,
          to: H0 + 2 * HOUR,
          window: 5 * MIN,
          step: 5 * MIN,
          metrics: ['cpu', 'memory'],
          functions: ALL,
          groupBy: ['host'],
          where: exp001,
        }),
        'every function',
      );
      // Host b has no memory in the second quarter hour: its memory count is 0 and its other memory columns null.
      const quiet = json.windows[3].rows.find((r: any) => r.group.host === 'b');
      assert.equal(quiet.values.count_memory, 0);
      assert.equal(quiet.values.avg_memory, null);
      assert.equal(json.output.destination, 'none');
      assert.equal(json.rollup, null); // percentiles, first and last need the raw points

      // All hosts together: several series per metric in each window.
      const together = await create({
        name: 'every-function-together',
        pipeline: [
          { operation: 'filter', params: { metrics: ['cpu', 'memory'], tags: { experiment_id: 'exp_001' } } },
          { operation: 'aggregate', params: { window: '15m', functions: ALL } },
        ],
      });
      const all = await dryRun(together.id, H0, H0 + 2 * HOUR);
      assertRows(
        all.windows,
        expectedRows(points, {
          from: H0,
          to: H0 + 2 * HOUR,
          window: 15 * MIN,
          step: 15 * MIN,
          metrics: ['cpu', 'memory'],
          functions: ALL,
          groupBy: [],
          where: exp001,
        }),
        'every function, hosts together',
      );
    });

    it('overlapping windows (every < window) and grouping by source', async () => {
      const p = await create({
        name: 'sliding',
        pipeline: [
          { operation: 'filter', params: { metric: 'cpu', source: ['node-1', 'node-3'] } },
          {
            operation: 'aggregate',
            params: { window: '5m', functions: ['avg', 'p90', 'count', 'last'], group_by: 'source' },
          },
        ],
        schedule: { every: '1m' },
        enabled: false, // scheduled windows, but the scheduler leaves it alone
      });
      const from = H0 + 10 * MIN + 20_000,
        to = H0 + 40 * MIN;
      const json = await dryRun(p.id, from, to);
      assert.equal(json.total_windows, 30);
      assert.equal(json.every, '1m');
      const expected = expectedRows(points, {
        from,
        to,
        window: 5 * MIN,
        step: MIN,
        metrics: ['cpu'],
        functions: ['avg', 'p90', 'count', 'last'],
        groupBy: ['source'],
        where: (x) => x.source !== 'node-2',
      });
      assertRows(json.windows, expected, 'sliding');
      assert.equal(json.windows[0].window_start, iso(H0 + 6 * MIN)); // the first window ends at 11m, inside the range
    });

    it('transform, rename, threshold and select on the aggregated rows', async () => {
      const p = await create({
        name: 'stages',
        pipeline: [
          // disk.io has a dot: its columns (avg_disk_io) exist only when the filter names it.
          {
            operation: 'filter',
            params: { metrics: ['cpu', 'memory', 'disk.io'], tags: { experiment_id: 'exp_001' } },
          },
          { operation: 'aggregate', params: { window: '10m', functions: ['avg', 'max', 'min'], group_by: ['host'] } },
          { operation: 'transform', params: { formula: 'round(max_cpu - min_cpu, 2)', as: 'spread' } },
          { operation: 'transform', params: { formula: 'avg_cpu + max_memory' } },
          { operation: 'rename', params: { columns: { value: 'combined' } } },
          { operation: 'threshold', params: { condition: 'spread > 95 || combined > 560' } },
          { operation: 'select', params: { columns: ['combined', 'spread', 'avg_disk_io'] } },
        ],
      });
      assert.deepEqual(p.columns, ['combined', 'spread', 'avg_disk_io']);
      const json = await dryRun(p.id, H0, H0 + 2 * HOUR);
      const raw = expectedRows(points, {
        from: H0,
        to: H0 + 2 * HOUR,
        window: 10 * MIN,
        step: 10 * MIN,
        metrics: ['cpu', 'memory', 'disk.io'],
        functions: ['avg', 'max', 'min'],
        groupBy: ['host'],
        where: exp001,
      });
      const expected = raw
        .map((r) => {
          const spread = Math.round((r.values.max_cpu! - r.values.min_cpu!) * 100) / 100;
          const combined = r.values.max_memory === null ? null : r.values.avg_cpu! + r.values.max_memory;
          return {
            ...r,
            values: { combined, spread, avg_disk_io: r.values.avg_disk_io },
            keep: spread > 95 || (combined !== null && combined > 560),
          };
        })
        .filter((r) => r.keep)
        .map(({ keep: _keep, ...r }) => r);
      assert.ok(expected.length > 0 && expected.length < raw.length, 'the threshold keeps some rows and drops others');
      assertRows(json.windows, expected, 'stages');
    });

    it('finds the metrics when it runs when the filter names none and no stage names a column', async () => {
      const p = await create({
        name: 'discover',
        pipeline: [
          { operation: 'filter', params: { sources: ['node-1'] } },
          { operation: 'aggregate', params: { window: '1h', functions: ['count'] } },
        ],
      });
      assert.equal(p.columns, null);
      const json = await dryRun(p.id, H0, H0 + 2 * HOUR);
      assert.deepEqual(json.columns, ['count_cpu', 'count_disk_io', 'count_memory']);
      assertRows(
        json.windows,
        expectedRows(points, {
          from: H0,
          to: H0 + 2 * HOUR,
          window: HOUR,
          step: HOUR,
          metrics: ['cpu', 'disk.io', 'memory'],
          functions: ['count'],
          groupBy: [],
          where: (x) => x.source === 'node-1',
        }),
        'discover',
      );
    });

    it('writes a derived series through the write path: queryable, and exactly what the dry-run showed', async () => {
      const p = await create({
        name: 'cpu-plus-mem',
        pipeline: [
          { operation: 'filter', params: { tags: { experiment_id: 'exp_001' } } },
          { operation: 'aggregate', params: { window: '5m', functions: ['avg', 'max'], group_by: ['host'] } },
          { operation: 'transform', params: { formula: 'avg_cpu + max_memory' } },
        ],
        output: { destination: 'metric', metric: 'cpu_plus_mem', unit: 'mixed', tags: { derived: 'yes' } },
      });
      const from = H0 + HOUR,
        to = H0 + 2 * HOUR;
      const dry = await dryRun(p.id, from, to);
      const planned = dry.windows.flatMap((w: WindowJson) => w.points!);
      assert.equal(dry.output.points, planned.length);
      assert.equal(dry.output.series, 2);
      assert.equal(dry.output.source, 'pipeline:cpu-plus-mem');
      assert.equal(dry.output.skipped_nulls, 0);
      assert.equal(
        (await ctx.t.get('/api/v1/metrics/query?metric=cpu_plus_mem')).status,
        404,
        'a dry-run writes nothing',
      );

      const r = await ctx.t.post(`/api/v1/pipelines/${p.id}/run`, { from: iso(from), to: iso(to) });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.run.status, 'ok');
      assert.equal(r.json.run.trigger, 'manual');
      assert.equal(r.json.run.windows, 12);
      assert.equal(r.json.output.points_written, planned.length);
      assert.deepEqual(r.json.windows, dry.windows, 'a run shows what its dry-run showed');

      // In the database: exactly the planned points, no more.
      const stored = await ctx.t.sql.query<{
        time: Date;
        source: string;
        tags: Record<string, string>;
        unit: string;
        value: number;
      }>(
        `SELECT time, source, tags, unit, value FROM metrics WHERE metric = 'cpu_plus_mem' ORDER BY time, tags ->> 'host'`,
      );
      assert.deepEqual(
        stored.rows.map((x) => ({
          metric: 'cpu_plus_mem',
          source: x.source,
          tags: x.tags,
          timestamp: x.time.toISOString(),
          value: x.value,
        })),
        [...planned].sort(
          (a: any, b: any) => a.timestamp.localeCompare(b.timestamp) || a.tags.host.localeCompare(b.tags.host),
        ),
      );
      assert.equal(stored.rows[0].unit, 'mixed');

      // Queryable like any metric, against the independent computation.
      const expected = expectedRows(points, {
        from,
        to,
        window: 5 * MIN,
        step: 5 * MIN,
        metrics: ['cpu', 'memory'],
        functions: ['avg', 'max'],
        groupBy: ['host'],
        where: (x) => exp001(x) && x.tags.host === 'a',
      });
      const q = await ctx.t.get(
        `/api/v1/metrics/query?metric=cpu_plus_mem&source=pipeline:cpu-plus-mem&tags=host:a&tags=derived:yes&from=${iso(from)}&to=${iso(to)}&granularity=5m`,
      );
      assert.equal(q.status, 200, q.body);
      assert.equal(q.json.data_points.length, expected.length);
      q.json.data_points.forEach((d: { timestamp: string; value: number }, i: number) => {
        assert.equal(Date.parse(d.timestamp), expected[i].start);
        assert.ok(close(d.value, expected[i].values.avg_cpu! + expected[i].values.max_memory!));
      });

      // Running the same range again rewrites the same points (idempotent), and both runs are recorded.
      await ctx.t.post(`/api/v1/pipelines/${p.id}/run`, { from: iso(from), to: iso(to) });
      const again = await ctx.t.sql.query<{ n: number }>(
        `SELECT count(*) AS n FROM metrics WHERE metric = 'cpu_plus_mem'`,
      );
      assert.equal(again.rows[0].n, planned.length);
      const history = await runs(p.id);
      assert.equal(history.length, 2);
      assert.equal(history[0].output.points_written, planned.length);
      assert.equal(history[0].from, iso(from));
      assert.equal(history[0].to, iso(to));
    });

    it('delivers to a webhook: signed, retried, logged, and reported on the run', async () => {
      sent.length = 0;
      answers = [{ status: 500 }, { status: 503, retryAfterSeconds: 0 }, { status: 200 }];
      const secret = 'pipeline-secret-0123456789';
      const p = await create({
        name: 'to-webhook',
        pipeline: [
          { operation: 'filter', params: { metrics: ['cpu'], tags: { experiment_id: 'exp_001' } } },
          { operation: 'aggregate', params: { window: '5m', functions: ['max'] } },
          { operation: 'threshold', params: { column: 'max_cpu', op: '>', value: 0 } },
        ],
        output: { destination: 'webhook', url: 'https://hooks.example.com/pipe', secret },
      });
      const r = await ctx.t.post(`/api/v1/pipelines/${p.id}/run?from=${iso(H0)}&to=${iso(H0 + 15 * MIN)}`);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.output.deliveries.length, 1);
      const id = r.json.output.deliveries[0].id ?? r.json.output.deliveries[0];
      const delivered = await waitFor(
        async () => {
          const d = (await ctx.t.get(`/api/v1/webhooks/deliveries/${id}`)).json;
          return d.status === 'delivered' && d;
        },
        10_000,
        'the pipeline delivery',
      );
      assert.equal(delivered.attempts, 3);
      assert.equal(delivered.subject, `pipeline:${p.id}`);
      assert.equal(sent.length, 3);
      const req = sent[2];
      assert.equal(req.url.hostname, 'hooks.example.com');
      assert.equal(req.headers['x-timescope-event'], 'pipeline.output');
      const [t, v1] = req.headers['x-timescope-signature'].split(',').map((x) => x.split('=')[1]);
      assert.equal(v1, createHmac('sha256', secret).update(`${t}.${req.body}`).digest('hex'));
      const payload = JSON.parse(req.body);
      assert.deepEqual(payload.pipeline, { id: p.id, name: 'to-webhook', version: 1 });
      assert.equal(payload.from, iso(H0));
      assert.equal(payload.to, iso(H0 + 15 * MIN));
      assert.deepEqual(payload.columns, ['max_cpu']);
      assert.deepEqual(
        payload.rows.map((x: any) => [x.window_start, x.window_end, x.values.max_cpu]),
        r.json.windows.flatMap((w: WindowJson) => w.rows.map((x) => [w.window_start, w.window_end, x.values.max_cpu])),
      );
      const max = (a: number) =>
        Math.max(
          ...points.filter((x) => x.metric === 'cpu' && exp001(x) && x.t >= a && x.t < a + 5 * MIN).map((x) => x.v),
        );
      assert.deepEqual(
        payload.rows.map((x: any) => x.values.max_cpu),
        [max(H0), max(H0 + 5 * MIN), max(H0 + 10 * MIN)],
      );

      const [run] = await runs(p.id);
      assert.equal(run.output.delivery, 'delivered');
      assert.equal(run.output.deliveries[0].attempts, 3);
      const log = await ctx.t.get(`/api/v1/webhooks/deliveries?subject=pipeline:${p.id}`);
      assert.equal(log.json.deliveries.length, 1);
      assert.ok(!log.body.includes(secret));

      // A dry-run sends nothing.
      const before = sent.length;
      const dry = await dryRun(p.id, H0, H0 + 15 * MIN);
      assert.deepEqual(dry.output, {
        destination: 'webhook',
        url: 'https://hooks.example.com/pipe',
        deliveries: 1,
        rows: 3,
      });
      await new Promise((res) => setTimeout(res, 50));
      assert.equal(sent.length, before);
    });

    it('runs on schedule under fake time: each window once, never overlapping, catch-up bounded, failures backed off', async () => {
      let now = H0 + 30 * MIN + 40_000;
      service.useClock(() => now);
      try {
        const p = await create({
          name: 'scheduled',
          pipeline: [
            { operation: 'filter', params: { metrics: ['cpu'], tags: { experiment_id: 'exp_001' } } },
            { operation: 'aggregate', params: { window: '5m', functions: ['count'] } },
          ],
          output: { destination: 'metric', metric: 'cpu_points' },
          schedule: { every: '5m', delay: '30s' },
        });
        // No filter stage: every series of the database, more than QUERY_MAX_SERIES allows: each run fails.
        const broken = await create({
          name: 'too-wide',
          pipeline: [{ operation: 'aggregate', params: { window: '5m', functions: ['count'] } }],
          schedule: { every: '5m', delay: '0s' },
        });
        const stored = async () =>
          (
            await ctx.t.sql.query<{ t: Date; v: number }>(
              `SELECT time AS t, value AS v FROM metrics WHERE metric = 'cpu_points' ORDER BY time`,
            )
          ).rows.map((x) => [x.t.getTime(), x.v]);
        const expectedAt = (start: number) => [
          start,
          points.filter((x) => x.metric === 'cpu' && exp001(x) && x.t >= start && x.t < start + 5 * MIN).length,
        ];

        // A new pipeline starts with the latest window that ended at least `delay` ago.
        const first = await ctx.t.runJob('pipelines');
        assert.equal(first.details.ran, 2);
        assert.equal(first.details.failed, 1);
        assert.deepEqual(await stored(), [expectedAt(H0 + 25 * MIN)]);
        // Nothing new is due at the same time: no second run.
        assert.equal((await ctx.t.runJob('pipelines')).details.ran, 0);
        assert.equal((await runs(p.id)).length, 1);
        // The failing pipeline was recorded, kept its watermark and waits out its back-off.
        const failedRuns = await runs(broken.id);
        assert.equal(failedRuns.length, 1);
        assert.equal(failedRuns[0].status, 'failed');
        assert.match(failedRuns[0].error, /QUERY_MAX_SERIES/);
        const state = (await ctx.t.get(`/api/v1/pipelines/${broken.id}`)).json.state;
        assert.equal(state.last_window_end, null);
        assert.equal(state.failures, 1);
        assert.equal(Date.parse(state.retry_at), now + 5 * MIN);

        // Three windows later, one run covers all three.
        now = H0 + 45 * MIN + 40_000;
        await ctx.t.runJob('pipelines');
        assert.deepEqual(
          await stored(),
          [25, 30, 35, 40].map((m) => expectedAt(H0 + m * MIN)),
        );
        const [latest] = await runs(p.id);
        assert.deepEqual(
          [latest.trigger, latest.status, latest.windows, latest.from, latest.to],
          ['schedule', 'ok', 3, iso(H0 + 30 * MIN), iso(H0 + 45 * MIN)],
        );

        // Concurrent triggers (two through the job machinery, two straight into the scheduler) run each window once.
        const repo = ctx.t.app.get(PipelinesRepository);
        const stale = await repo.scheduled();
        now = H0 + 60 * MIN + 40_000;
        await Promise.all([
          ctx.t.runJob('pipelines'),
          ctx.t.runJob('pipelines'),
          service.runScheduled(),
          service.runScheduled(),
        ]);
        // A tick that read the pipelines before those runs finished (a slow loop, another instance) and
        // takes the lock after them must not run their windows again.
        const scheduledNow = repo.scheduled;
        repo.scheduled = async () => stale;
        try {
          assert.equal((await service.runScheduled()).ran, 0);
        } finally {
          repo.scheduled = scheduledNow;
        }
        assert.deepEqual(
          await stored(),
          [25, 30, 35, 40, 45, 50, 55].map((m) => expectedAt(H0 + m * MIN)),
        );
        const scheduled = (await runs(p.id)).filter((x) => x.trigger === 'schedule' && x.status === 'ok').reverse();
        assert.deepEqual(
          scheduled.map((x) => [x.from, x.to]),
          [
            [iso(H0 + 25 * MIN), iso(H0 + 30 * MIN)],
            [iso(H0 + 30 * MIN), iso(H0 + 45 * MIN)],
            [iso(H0 + 45 * MIN), iso(H0 + 60 * MIN)],
          ],
        );

        // Backing off doubles: it failed again at 45m (retry at 55m) and at 60m (retry at 80m).
        const backedOff = (await ctx.t.get(`/api/v1/pipelines/${broken.id}`)).json.state;
        assert.equal(backedOff.failures, 3);
        assert.equal(Date.parse(backedOff.retry_at), now + 20 * MIN);
        const failures = (await runs(broken.id)).length;

        // After a day of downtime, at most PIPELINE_MAX_CATCHUP_WINDOWS windows run; the rest are reported skipped.
        now = H0 + 60 * MIN + 24 * HOUR + 40_000;
        const late = await ctx.t.runJob('pipelines');
        assert.equal(late.details.skipped_windows, 288 - 4);
        const [caught] = await runs(p.id);
        assert.equal(caught.windows, 4);
        assert.equal(caught.skipped_windows, 284);
        assert.deepEqual(caught.output.skipped, {
          windows: 284,
          from: iso(H0 + 60 * MIN),
          to: iso(H0 + 60 * MIN + 24 * HOUR - 20 * MIN),
        });
        assert.equal((await runs(broken.id)).length, failures + 1, 'the back-off ended and it failed again');

        // A manual run defaults to the last window that ended.
        const manual = await ctx.t.post(`/api/v1/pipelines/${p.id}/run`);
        assert.equal(manual.status, 200, manual.body);
        assert.equal(manual.json.run.from, iso(H0 + 24 * HOUR + 55 * MIN));
        assert.equal(manual.json.run.to, iso(H0 + 25 * HOUR));
      } finally {
        service.useClock(Date.now);
      }
    });

    it("commits a scheduled run's webhook parts with its watermark move: a failed commit queues nothing, the retry sends each window once", async () => {
      let now = H0 + 90 * MIN + 40_000;
      service.useClock(() => now);
      try {
        const p = await create({
          name: 'scheduled-webhook',
          pipeline: [
            { operation: 'filter', params: { metrics: ['cpu'], tags: { experiment_id: 'exp_001' } } },
            { operation: 'aggregate', params: { window: '5m', functions: ['max'] } },
          ],
          output: { destination: 'webhook', url: 'https://hooks.example.com/scheduled' },
          schedule: { every: '5m', delay: '30s' },
        });
        const queued = async () =>
          (await ctx.t.get(`/api/v1/webhooks/deliveries?subject=pipeline:${p.id}`)).json.deliveries as Array<{
            payload: { rows: Array<{ window_start: string }> };
          }>;
        const state = async () => (await ctx.t.get(`/api/v1/pipelines/${p.id}`)).json.state;
        assert.equal((await service.runScheduled()).ran, 1);
        assert.equal((await queued()).length, 1);
        assert.equal((await state()).last_window_end, iso(H0 + 90 * MIN));

        // Two windows later the watermark cannot be moved: the parts of that run must not stay queued.
        now = H0 + 100 * MIN + 40_000;
        await ctx.t.sql.query(`CREATE FUNCTION refuse_watermark() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.last_window_end IS DISTINCT FROM OLD.last_window_end THEN RAISE EXCEPTION 'watermark store unavailable'; END IF; RETURN NEW; END $$`);
        await ctx.t.sql.query(
          'CREATE TRIGGER refuse_watermark BEFORE UPDATE ON pipelines FOR EACH ROW EXECUTE FUNCTION refuse_watermark()',
        );
        try {
          await service.runScheduled().catch(() => undefined);
        } finally {
          await ctx.t.sql.query('DROP TRIGGER refuse_watermark ON pipelines');
          await ctx.t.sql.query('DROP FUNCTION refuse_watermark()');
        }
        assert.equal((await queued()).length, 1, 'nothing queued by the run that failed');
        const failed = await state();
        assert.deepEqual([failed.last_window_end, failed.failures], [iso(H0 + 90 * MIN), 1]);
        const [run] = await runs(p.id);
        assert.equal(run.status, 'failed');
        assert.ok(run.error, 'the failure is recorded (a database error is not shown to clients)');
        assert.deepEqual(run.output, { destination: 'webhook' });

        // After the back-off the retry covers the windows that stayed due, once.
        now = Date.parse(failed.retry_at) + 1;
        assert.equal((await service.runScheduled()).ran, 1);
        const starts = (await queued()).flatMap((d) => d.payload.rows.map((r) => r.window_start)).sort();
        assert.deepEqual(
          starts,
          [85, 90, 95, 100].map((m) => iso(H0 + m * MIN)),
        );
        assert.equal((await state()).last_window_end, iso(H0 + 105 * MIN));
        const [retried] = await runs(p.id);
        assert.deepEqual([retried.status, retried.windows, retried.output.deliveries.length], ['ok', 3, 1]);
      } finally {
        service.useClock(Date.now);
      }
    });

    it('bounds a run: too many windows is a 400 naming from, too many rows a 422 recorded as a failed run', async () => {
      const p = await create({
        name: 'fine-grained',
        pipeline: [
          { operation: 'filter', params: { metrics: ['cpu'] } },
          { operation: 'aggregate', params: { window: '10s', functions: ['avg'], group_by: ['host'] } },
        ],
      });
      const wide = await ctx.t.post(`/api/v1/pipelines/${p.id}/dry-run?from=now-3d`);
      assert.equal(wide.status, 400);
      assert.equal(wide.json.error.details.parameter, 'from');
      const many = await ctx.t.post(`/api/v1/pipelines/${p.id}/run?from=${iso(H0)}&to=${iso(H0 + HOUR)}`);
      assert.equal(many.status, 422, many.body);
      const [run] = await runs(p.id);
      assert.equal(run.status, 'failed');
      assert.equal(many.json.error.details.run_id, run.id);
      assert.match(run.error, /PIPELINE_MAX_ROWS/);
    });

    it('reads whole windows from a rollup tier when every function allows it, with the numbers of the raw points', async () => {
      const fns = ['avg', 'sum', 'min', 'max', 'count'];
      // By host (one series per metric and group), and all together (hosts a and b merged, with different point counts).
      const variants = [
        { groupBy: ['host'], window: '1h', ms: HOUR, tier: '1h' },
        { groupBy: [], window: '10m', ms: 10 * MIN, tier: '5m' },
      ];
      const ids: number[] = [];
      for (const v of variants) {
        const p = await create({
          name: `from-rollups-${v.window}`,
          pipeline: [
            { operation: 'filter', params: { metrics: ['cpu', 'memory'], tags: { experiment_id: 'exp_001' } } },
            { operation: 'aggregate', params: { window: v.window, functions: fns, group_by: v.groupBy } },
          ],
        });
        ids.push(p.id);
      }
      const check = async (what: string, fromRollups = true) => {
        for (const [i, v] of variants.entries()) {
          const json = await dryRun(ids[i], H0, H0 + 2 * HOUR);
          if (fromRollups) assert.equal(json.rollup, v.tier, what);
          assertRows(
            json.windows,
            expectedRows(points, {
              from: H0,
              to: H0 + 2 * HOUR,
              window: v.ms,
              step: v.ms,
              metrics: ['cpu', 'memory'],
              functions: fns,
              groupBy: v.groupBy,
              where: exp001,
            }),
            `${what}, ${v.window}`,
          );
        }
      };
      // Nothing is materialised yet on plain PostgreSQL (raw points serve); TimescaleDB aggregates on read.
      await check('before the rollup refresh', ctx.flavour === 'timescaledb');
      await ctx.t.runJob('rollup-refresh');
      await check('after the rollup refresh');
      // A late point below the rollup watermark. Plain PostgreSQL reads raw points until the refresh
      // re-aggregates it; TimescaleDB's continuous aggregates count it at the next refresh (as queries do).
      const late: KnownPoint = {
        metric: 'cpu',
        source: 'node-1',
        tags: { host: 'a', experiment_id: 'exp_001' },
        t: H0 + 10 * MIN + 1_000,
        v: 1_000,
      };
      await ingest(ctx.t, [late]);
      points.push(late);
      if (ctx.flavour === 'postgresql') await check('with a late point', false);
      await ctx.t.runJob('rollup-refresh');
      await check('after the late point was re-aggregated');
      // Percentiles, first and last need the raw points.
      const raw = await create({
        name: 'raw-only',
        pipeline: [
          { operation: 'filter', params: { metrics: ['cpu'] } },
          { operation: 'aggregate', params: { window: '1h', functions: ['avg', 'p50'] } },
        ],
      });
      assert.equal((await dryRun(raw.id, H0, H0 + 2 * HOUR)).rollup, null);
    });

    it('dry-runs a definition that is not saved yet', async () => {
      const r = await ctx.t.post(`/api/v1/pipelines/dry-run?from=${iso(H0)}&to=${iso(H0 + 10 * MIN)}`, {
        pipeline: [
          { operation: 'filter', params: { metrics: 'memory' } },
          { operation: 'aggregate', params: { window: '5m', functions: ['min'] } },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.pipeline, null);
      assertRows(
        r.json.windows,
        expectedRows(points, {
          from: H0,
          to: H0 + 10 * MIN,
          window: 5 * MIN,
          step: 5 * MIN,
          metrics: ['memory'],
          functions: ['min'],
          groupBy: [],
        }),
        'draft',
      );
      assert.equal(
        (await ctx.t.get('/api/v1/pipelines')).json.pipelines.some((x: { name: string }) => x.name === 'dry-run'),
        false,
      );
      const bad = await ctx.t.post('/api/v1/pipelines/dry-run', {
        name: 'draft',
        pipeline: [{ operation: 'aggregate', params: { window: '5m', functions: ['mode'] } }],
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.details.field, 'pipeline[0].params.functions[0]');
    });
  },
  {
    WEBHOOK_RETRY_BASE_MS: '5',
    WEBHOOK_RETRY_MAX_MS: '20',
    WEBHOOK_MAX_ATTEMPTS: '4',
    QUERY_MAX_SERIES: '6',
    PIPELINE_MAX_ROWS: '200',
    PIPELINE_MAX_CATCHUP_WINDOWS: '4',
  },
);
