import assert from 'node:assert/strict';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, it } from 'node:test';
import { TimescopeApiError, TimescopeClient, StreamEvent } from '../../clients/typescript/src/index.js';
import { StreamHub } from '../../src/streaming/stream-hub.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

/**
 * The TypeScript client (clients/typescript) against the real app listening on a real port, on a
 * real database. The client talks HTTP only, so one storage flavour is enough here; the service's
 * own suites cover both.
 */

/**
 * An HTTP proxy in front of the app that answers 503 to the first attempt of every ingest batch:
 * batches 1, 3, … are first passed on to the app (so they are committed) and then answered 503, as
 * when only the answer is lost; batches 2, 4, … are answered 503 without reaching the app.
 */
class FlakyIngestProxy {
  private server!: Server;
  url = '';
  readonly seen = new Set<string>();
  attempts = 0;
  committedThenRefused = 0;

  constructor(private readonly target: string) {}

  async start() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const headers: Record<string, string> = {};
        for (const h of ['authorization', 'content-type', 'accept'])
          if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
        const forward = () =>
          fetch(this.target + req.url, { method: req.method, headers, body: body === '' ? undefined : body });
        const refuse = () => {
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
          res.end(JSON.stringify({ error: { code: 'SERVICE_UNAVAILABLE', message: 'injected', retry_after: 0 } }));
        };
        if (req.url === '/api/v1/metrics/batch') {
          this.attempts++;
          if (!this.seen.has(body)) {
            this.seen.add(body);
            if (this.seen.size % 2 === 1) {
              const r = await forward();
              await r.text();
              assert.equal(r.status, 200);
              this.committedThenRefused++;
            }
            return refuse();
          }
        }
        const r = await forward();
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await r.arrayBuffer()));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

describeEachFlavour(
  'typescript client',
  (ctx) => {
    let base: string;
    let key: string;
    let client: TimescopeClient;
    const T0 = Date.now() - 40 * 60_000;

    before(async () => {
      base = `http://127.0.0.1:${await ctx.t.listen()}`;
      key = await ctx.t.key(['ingest', 'read'], 'client-test');
      client = new TimescopeClient({ baseUrl: `${base}/api/v1`, apiKey: key, retry: { baseDelayMs: 20 } });
    });

    it('loses and doubles no point when the first attempt of every batch gets 503', async () => {
      const proxy = new FlakyIngestProxy(base);
      await proxy.start();
      try {
        const flaky = new TimescopeClient({ baseUrl: proxy.url, apiKey: key, retry: { baseDelayMs: 20 } });
        const w = flaky.writer({ source: 'client_test' });
        const N = 12_000;
        // No timestamps: the writer stamps each point at write(), so a retried batch rewrites the
        // same points. A series per point, so points stamped in one millisecond stay apart.
        for (let i = 0; i < N; i++) await w.write({ name: 'client_ingest', value: i, tags: { n: String(i) } });
        await w.close();
        assert.deepEqual(w.stats, { buffered: 0, inFlight: 0, written: N, failed: 0, batches: 3 });
        assert.equal(proxy.seen.size, 3); // 5,000 + 5,000 + 2,000
        assert.equal(proxy.attempts, 6);
        assert.equal(proxy.committedThenRefused, 2);
        const { rows } = await ctx.t.sql.query(
          `SELECT count(*)::int AS n, count(DISTINCT tags->>'n')::int AS series, sum(value)::float8 AS total
             FROM metrics WHERE metric = 'client_ingest'`,
        );
        assert.deepEqual(rows[0], { n: N, series: N, total: (N * (N - 1)) / 2 });
        const one = await client.query({
          metric: 'client_ingest',
          tags: { n: '4242' },
          from: 'now-1h',
          granularity: '1h',
          aggregation: 'count',
        });
        assert.equal(one.series_count, 1);
        assert.deepEqual(
          one.data_points.map((p) => p.value),
          [1],
        );
      } finally {
        await proxy.stop();
      }
    });

    it('sends gzip-compressed batches when asked, which the service decodes', async () => {
      // The content-encoding of every ingest request, as the client handed it to fetch.
      const encodings: Array<string | undefined> = [];
      const gz = new TimescopeClient({
        baseUrl: base,
        apiKey: key,
        compression: 'gzip',
        fetch: (input, init) => {
          if (input.endsWith('/api/v1/metrics/batch'))
            encodings.push((init.headers as Record<string, string> | undefined)?.['content-encoding']);
          return fetch(input, init);
        },
      });
      const w = gz.writer({ source: 'client_gzip', batchSize: 1_000 });
      for (let i = 0; i < 2_500; i++)
        await w.write({ name: 'client_gzip', value: i, tags: { k: String(i % 5) }, timestamp: T0 + i * 1000 });
      await w.close();
      assert.equal(w.stats.batches, 3);
      // The writer's batches went compressed, as writePoints' do.
      assert.deepEqual(encodings, ['gzip', 'gzip', 'gzip']);
      const { rows } = await ctx.t.sql.query(
        `SELECT count(*)::int AS n, sum(value)::float8 AS total FROM metrics WHERE metric = 'client_gzip'`,
      );
      assert.deepEqual(rows[0], { n: 2_500, total: (2_500 * 2_499) / 2 });
      const one = await gz.writePoints([{ name: 'client_gzip', value: -1, source: 'single', timestamp: T0 }]);
      assert.equal(one.metrics_accepted, 1);
      assert.deepEqual(encodings, ['gzip', 'gzip', 'gzip', 'gzip']);
    });

    it('answers typed queries, summaries, anomalies and the catalogue as the service sends them', async () => {
      const points = [];
      for (let i = 0; i < 30; i++) {
        for (const host of ['a', 'b'])
          points.push({
            name: 'client_cpu',
            value: host === 'a' ? i : 100 + i,
            unit: 'percent',
            tags: { host },
            timestamp: new Date(T0 + i * 60_000),
          });
      }
      const reply = await client.writePoints(points, { source: 'srv' });
      assert.equal(reply.status, 'success');
      assert.equal(reply.metrics_accepted, 60);
      assert.match(reply.batch_id, /^batch_/);
      const from = new Date(T0);
      const to = new Date(T0 + 30 * 60_000);

      const q = await client.query({
        metric: 'client_cpu',
        source: 'srv',
        tags: { host: 'a' },
        from,
        to,
        granularity: '10m',
        aggregation: 'max',
      });
      assert.equal(q.metric, 'client_cpu');
      assert.equal(q.series_count, 1);
      assert.equal(q.aggregation, 'max');
      assert.equal(q.from, from.toISOString());
      assert.ok(q.data_points.length >= 3 && q.data_points.length <= 4);
      assert.equal(Math.max(...q.data_points.map((p) => p.value ?? -1)), 29);
      const both = await client.query({
        metric: 'client_cpu',
        tags: { host: ['a', 'b'] },
        from,
        to,
        granularity: '1h',
        aggregation: 'count',
      });
      assert.equal(both.series_count, 2);
      assert.equal(
        both.data_points.reduce((s, p) => s + (p.value ?? 0), 0),
        60,
      );

      const multi = await client.queryMulti({
        queries: [{ metric: 'client_cpu', tags: { host: 'b' }, aggregation: 'min' }, { metric: 'client_nope' }],
        from,
        to: T0 + 30 * 60_000, // epoch ms works too
        granularity: '1h',
      });
      assert.equal(multi.results.length, 2);
      assert.equal(Math.min(...multi.results[0].data_points.map((p) => p.value ?? Infinity)), 100);
      assert.equal(multi.results[1].error?.code, 'RESOURCE_NOT_FOUND');

      // group_by: a list in query(), a string shared by the queries of queryMulti, or one query's own.
      const grouped = await client.query({
        metric: 'client_cpu',
        from,
        to,
        granularity: '1h',
        aggregation: 'count',
        group_by: ['source', 'host'],
      });
      assert.equal(grouped.series_count, 2);
      assert.deepEqual(
        grouped.groups?.map((g) => [g.source, g.tags.host, g.data_points.reduce((n, p) => n + (p.value ?? 0), 0)]),
        [
          ['srv', 'a', 30],
          ['srv', 'b', 30],
        ],
      );
      assert.equal(both.groups, undefined);
      const groupedMulti = await client.queryMulti({
        queries: [
          { metric: 'client_cpu', aggregation: 'max' },
          { metric: 'client_cpu', group_by: 'source' },
        ],
        from,
        to,
        granularity: '1h',
        group_by: 'host',
      });
      assert.deepEqual(
        groupedMulti.results[0].groups?.map((g) => [g.tags.host, Math.max(...g.data_points.map((p) => p.value ?? 0))]),
        [
          ['a', 29],
          ['b', 129],
        ],
      );
      assert.deepEqual(
        groupedMulti.results[1].groups?.map((g) => [g.source, g.tags]),
        [['srv', {}]],
      );

      const s = await client.summary({ metric: 'client_cpu', tags: { host: 'a' }, from, to, percentiles: [75] });
      assert.equal(s.statistics.count, 30);
      assert.equal(s.statistics.min, 0);
      assert.equal(s.statistics.max, 29);
      assert.equal(s.statistics.median, 14.5);
      assert.equal(s.statistics.percentiles.p75, 21.75);
      assert.deepEqual(Object.keys(s.statistics.percentiles).sort(), ['p50', 'p75', 'p90', 'p95', 'p99']);
      assert.deepEqual(s.time_range, { from: from.toISOString(), to: to.toISOString() });

      const an = await client.anomalies({
        metric: 'client_cpu',
        source: 'srv',
        tags: { host: 'a' },
        from,
        to,
        algorithm: 'mad',
        sensitivity: 0.5,
      });
      assert.equal(an.points_analyzed, 30);
      assert.equal(an.series_analyzed, 1);
      assert.equal(an.total_anomalies, an.anomalies.length);
      assert.equal(an.parameters.algorithm, 'mad');

      const names = await client.metricNames({ search: 'client_cpu' });
      assert.deepEqual(
        names.metrics.map((m) => [m.name, m.unit, m.series_count, m.sources_count]),
        [['client_cpu', 'percent', 2, 1]],
      );
      const sources = await client.sources({ metric: 'client_cpu' });
      assert.deepEqual(
        sources.sources.map((x) => [x.name, x.series_count]),
        [['srv', 2]],
      );
      const tags = await client.tags({ metric: 'client_cpu' });
      assert.deepEqual(tags.tags, { host: ['a', 'b'] });
    });

    it('throws typed errors carrying the envelope, without retrying them', async () => {
      let retried = 0;
      const c = new TimescopeClient({ baseUrl: base, apiKey: key, onRetry: () => retried++ });
      const notFound = await c.query({ metric: 'client_missing' }).catch((e: unknown) => e);
      assert.ok(notFound instanceof TimescopeApiError);
      assert.equal(notFound.status, 404);
      assert.equal(notFound.code, 'RESOURCE_NOT_FOUND');
      const bad = await c.query({ metric: 'client_cpu', aggregation: 'median' as 'avg' }).catch((e: unknown) => e);
      assert.ok(bad instanceof TimescopeApiError);
      assert.equal(bad.code, 'INVALID_QUERY');
      assert.equal(bad.details?.parameter, 'aggregation');
      const refused = await c.writePoints([{ name: '9lives', value: 1, source: 's' }]).catch((e: unknown) => e);
      assert.ok(refused instanceof TimescopeApiError);
      assert.equal(refused.code, 'INVALID_REQUEST');
      assert.equal(refused.details?.field, 'batches[0].metrics[0].name');
      const anon = new TimescopeClient({ baseUrl: base, apiKey: 'tsk_wrong' });
      const unauthorized = await anon.metricNames().catch((e: unknown) => e);
      assert.ok(unauthorized instanceof TimescopeApiError);
      assert.equal(unauthorized.status, 401);
      assert.equal(unauthorized.code, 'UNAUTHORIZED');
      assert.equal(retried, 0);
    });

    it('streams live points with the key in a header, and resumes with Last-Event-ID after the server closes the stream', async () => {
      const hub = ctx.t.app.get(StreamHub);
      const send = async (value: number) => {
        const r = await ctx.t.post('/api/v1/metrics', {
          source: 'live',
          metrics: [{ name: 'client_live', value, timestamp: T0 + value * 1000 }],
        });
        assert.equal(r.status, 200, r.body);
      };
      // The reconnect waits 5 s, so that points sent right after the drop commit before it even on a
      // slow machine: they come back by replay (Last-Event-ID), not live.
      const stream = client.stream({ metrics: ['client_live'], reconnectDelayMs: 5_000 });
      const next = async (): Promise<StreamEvent> => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no stream event within 10 s')), 10_000);
        });
        const r = await Promise.race([stream.next(), late]).finally(() => clearTimeout(timer));
        assert.equal(r.done, false);
        return r.value as StreamEvent;
      };
      const pending = next();
      await waitFor(() => hub.connectionCount === 1, 5_000, 'the stream to connect');
      for (const v of [1, 2, 3]) await send(v);
      const got: StreamEvent[] = [await pending, await next(), await next()];

      // The service closes every connection (as a restart or a proxy would); points commit meanwhile.
      ctx.t.app.getHttpServer().closeAllConnections();
      const droppedAt = Date.now();
      await waitFor(() => hub.connectionCount === 0, 5_000, 'the stream to close');
      for (const v of [4, 5, 6]) await send(v);
      assert.ok(Date.now() - droppedAt < 5_000, 'the points were committed before the client came back');
      assert.equal(hub.connectionCount, 0, 'the client has not come back yet');
      for (let i = 0; i < 3; i++) got.push(await next());
      await send(7);
      got.push(await next());

      assert.deepEqual(
        got.map((e) => [e.type, e.data && 'value' in e.data ? e.data.value : null]),
        [1, 2, 3, 4, 5, 6, 7].map((v) => ['point', v]),
      );
      assert.deepEqual(got[0].data, {
        metric: 'client_live',
        value: 1,
        timestamp: new Date(T0 + 1000).toISOString(),
        source: 'live',
        unit: null,
        tags: {},
      });
      const seqs = got.map((e) => Number(e.id!.split('.')[1]));
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
      );
      assert.equal(new Set(seqs).size, 7);
      assert.equal(stream.connections, 2);
      assert.equal(stream.lastEventId, got[6].id);

      // return() while a next() is waiting: the waiting next() ends, the connection closes.
      const waiting = stream.next();
      await stream.return();
      assert.deepEqual(await waiting, { done: true, value: undefined });
      await waitFor(() => hub.connectionCount === 0, 5_000, 'the stream to close');
    });

    it('stops a stream on its AbortSignal, and throws a refused stream as a typed error', async () => {
      const hub = ctx.t.app.get(StreamHub);
      const ctl = new AbortController();
      const s = client.stream({ metrics: ['client_quiet'], signal: ctl.signal });
      const waiting = s.next();
      await waitFor(() => hub.connectionCount === 1, 5_000, 'the stream to connect');
      ctl.abort();
      assert.deepEqual(await waiting, { done: true, value: undefined });
      await waitFor(() => hub.connectionCount === 0, 5_000, 'the stream to close');

      const bad = client.stream({ metrics: ['client_live'], aggregation: 'avg' }); // needs an interval
      const err = await bad.next().catch((e: unknown) => e);
      assert.ok(err instanceof TimescopeApiError);
      assert.equal(err.status, 400);
      assert.equal(err.details?.parameter, 'aggregation');
    });
  },
  {},
  { flavours: ['postgresql'] },
);
