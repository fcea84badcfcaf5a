import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import type { InjectResult } from '../support/app.js';
import { describeEachFlavour } from '../support/suite.js';

const MIN = 60_000;
const TO = Math.floor(Date.now() / MIN) * MIN;
const FROM = TO - 30 * MIN;
const sec = (ms: number) => Math.floor(ms / 1000);

/**
 * Every route family that takes a time parameter reads a bare number as epoch milliseconds, and
 * refuses one that looks like epoch seconds (or µs, ns) with a 400 naming the parameter, instead
 * of reading it as a time in January 1970. Parsing does not depend on the storage flavour: one
 * flavour is enough here.
 */
describeEachFlavour(
  'epoch numbers in time parameters',
  (ctx) => {
    let pipelineId: number;
    before(async () => {
      const metrics = Array.from({ length: 30 }, (_, i) => ({ name: 'ep', value: i % 7, timestamp: FROM + i * MIN }));
      assert.equal((await ctx.t.post('/api/v1/metrics', { source: 'epoch', metrics })).status, 200);
      const e = await ctx.t.post('/api/v1/events', {
        kind: 'deploy',
        source: 'api',
        level: 'info',
        message: 'x',
        timestamp: TO - MIN,
      });
      assert.equal(e.status, 201, e.body);
      const p = await ctx.t.post('/api/v1/pipelines', {
        name: 'epoch-test',
        pipeline: [
          { operation: 'filter', params: { metrics: 'ep' } },
          { operation: 'aggregate', params: { window: '5m', functions: ['avg'] } },
        ],
        output: { destination: 'none' },
      });
      assert.equal(p.status, 201, p.body);
      pipelineId = p.json.id;
    });

    function refused(r: InjectResult, parameter: string, unit: string, label: string) {
      assert.equal(r.status, 400, `${label}: ${r.body}`);
      assert.equal(r.json.error.code, 'INVALID_QUERY', label);
      assert.equal(r.json.error.details.parameter, parameter, label);
      assert.equal(r.json.error.details.expected, 'epoch milliseconds or ISO 8601', label);
      assert.match(r.json.error.message, new RegExp(`looks like epoch ${unit}`), label);
    }

    it('query, multi-query and summary', async () => {
      refused(await ctx.t.get(`/api/v1/metrics/query?metric=ep&from=${sec(FROM)}`), 'from', 'seconds', 'query');
      refused(await ctx.t.get(`/api/v1/metrics/query?metric=ep&to=${TO * 1000}`), 'to', 'microseconds', 'query µs');
      const ok = await ctx.t.get(
        `/api/v1/metrics/query?metric=ep&from=${FROM}&to=${TO}&aggregation=count&granularity=1h`,
      );
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.json.from, new Date(FROM).toISOString());
      assert.equal(
        ok.json.data_points.reduce((s: number, d: { value: number }) => s + d.value, 0),
        30,
      );
      refused(
        await ctx.t.post('/api/v1/metrics/query/multi', { from: sec(FROM), queries: [{ metric: 'ep' }] }),
        'from',
        'seconds',
        'multi',
      );
      refused(
        await ctx.t.post('/api/v1/metrics/query/multi', { queries: [{ metric: 'ep', to: TO * 1e6 }] }),
        'queries[0].to',
        'nanoseconds',
        'multi per query',
      );
      const multi = await ctx.t.post('/api/v1/metrics/query/multi', {
        from: FROM,
        to: TO,
        queries: [{ metric: 'ep' }],
      });
      assert.equal(multi.status, 200, multi.body);
      refused(await ctx.t.get(`/api/v1/metrics/summary?metric=ep&from=${sec(FROM)}`), 'from', 'seconds', 'summary');
      const summary = await ctx.t.get(`/api/v1/metrics/summary?metric=ep&from=${FROM}&to=${TO}`);
      assert.equal(summary.status, 200, summary.body);
    });

    it('anomalies', async () => {
      refused(
        await ctx.t.post('/api/v1/metrics/anomalies', { metric: 'ep', from: sec(FROM), to: sec(TO) }),
        'from',
        'seconds',
        'anomalies',
      );
      const ok = await ctx.t.post('/api/v1/metrics/anomalies', {
        metric: 'ep',
        from: FROM,
        to: TO,
        algorithm: 'zscore',
      });
      assert.equal(ok.status, 200, ok.body);
    });

    it('exports, streamed and asynchronous, naming the parameter as spelled', async () => {
      refused(
        await ctx.t.get(`/api/v1/metrics/export?format=csv&metric=ep&from=${sec(FROM)}&to=${TO}`),
        'from',
        'seconds',
        'export',
      );
      refused(
        await ctx.t.get(`/api/v1/metrics/export?format=csv&metric=ep&start_date=${FROM}&end_date=${sec(TO)}`),
        'end_date',
        'seconds',
        'export end_date',
      );
      const csv = await ctx.t.get(`/api/v1/metrics/export?format=csv&metric=ep&from=${FROM}&to=${TO}`);
      assert.equal(csv.status, 200, csv.body);
      assert.equal(csv.body.trim().split('\n').length, 31); // header + 30 points
      refused(
        await ctx.t.post('/api/v1/metrics/exports', { metric: 'ep', from: FROM, to: TO * 1e6, format: 'csv' }),
        'to',
        'nanoseconds',
        'async export',
      );
    });

    it('pipeline runs and dry-runs', async () => {
      const def = {
        pipeline: [
          { operation: 'filter', params: { metrics: 'ep' } },
          { operation: 'aggregate', params: { window: '5m', functions: ['count'] } },
        ],
      };
      refused(
        await ctx.t.post(`/api/v1/pipelines/dry-run?from=${sec(FROM)}&to=${TO}`, def),
        'from',
        'seconds',
        'dry-run',
      );
      const dry = await ctx.t.post(`/api/v1/pipelines/dry-run?from=${FROM}&to=${TO}`, def);
      assert.equal(dry.status, 200, dry.body);
      refused(
        await ctx.t.post(`/api/v1/pipelines/${pipelineId}/dry-run`, { from: FROM, to: sec(TO) }),
        'to',
        'seconds',
        'saved dry-run',
      );
      refused(await ctx.t.post(`/api/v1/pipelines/${pipelineId}/run?from=${sec(FROM)}`), 'from', 'seconds', 'run');
      const runs = await ctx.t.get(`/api/v1/pipelines/${pipelineId}/runs`);
      assert.equal(runs.status, 200, runs.body);
      assert.equal(runs.json.runs.length, 0); // nothing of a refused run is recorded
    });

    it('events, policy events and logs', async () => {
      refused(await ctx.t.get(`/api/v1/events?since=${sec(FROM)}`), 'since', 'seconds', 'events since');
      refused(await ctx.t.get(`/api/v1/events?until=${TO * 1000}`), 'until', 'microseconds', 'events until');
      refused(await ctx.t.get(`/policy/events?since=${sec(FROM)}`), 'since', 'seconds', 'policy events');
      refused(
        await ctx.t.get(`/api/v1/monitoring/logs?start_time=${sec(FROM)}`),
        'start_time',
        'seconds',
        'logs start_time',
      );
      const ok = await ctx.t.get(`/api/v1/events?kind=deploy&since=${FROM}&until=${TO}`);
      assert.equal(ok.status, 200, ok.body);
      assert.equal(ok.json.events.length, 1);
    });
  },
  {},
  { flavours: ['postgresql'] },
);
