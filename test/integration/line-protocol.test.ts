import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, it } from 'node:test';
import { HttpError, InfluxDB, Point, setLogger, WritePrecisionType } from '@influxdata/influxdb-client';
import { describeEachFlavour } from '../support/suite.js';

const SECOND = 1000;
/** Whole seconds, ten minutes ago: inside the retention, and aligned to 1 s query buckets. */
const base = () => Math.floor((Date.now() - 600 * SECOND) / SECOND) * SECOND;

describeEachFlavour(
  'line protocol',
  (ctx) => {
    let url = '';
    // The client logs every failed write; the tests look at the errors themselves. Its logger is
    // global state of the test process: put back afterwards.
    let previousLogger: ReturnType<typeof setLogger> | undefined;
    after(() => {
      if (previousLogger) setLogger(previousLogger);
    });
    before(async () => {
      previousLogger ??= setLogger({ error: () => undefined, warn: () => undefined });
      url = `http://127.0.0.1:${await ctx.t.listen()}`;
    });

    /** The official client, as an application configures it; no retries, so that errors surface at flush. */
    const writer = (token: string, bucket: string, precision: WritePrecisionType = 'ns') =>
      new InfluxDB({ url, token }).getWriteApi('my-org', bucket, precision, {
        maxRetries: 0,
        flushInterval: 0,
        batchSize: 100_000,
      });

    const flushError = async (flush: Promise<void>): Promise<HttpError> => {
      try {
        await flush;
      } catch (e) {
        assert.ok(e instanceof HttpError, String(e));
        return e;
      }
      assert.fail('the write was accepted');
    };

    const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'text/plain; charset=utf-8', ...ctx.t.authHeaders, ...headers },
      });

    const json = async (r: Response): Promise<any> => r.json();

    const count = async (source: string) =>
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM metrics WHERE source = $1`, [source])).rows[0].n);
    const seriesCount = async () => Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series`)).rows[0].n);
    /** Points as stored, with their time in exact microseconds. */
    const stored = async (source: string) =>
      (
        await ctx.t.sql.query(
          `SELECT metric, tags, value, (extract(epoch FROM time) * 1000000)::bigint::text AS us FROM metrics WHERE source = $1 ORDER BY metric, tags::text, time`,
          [source],
        )
      ).rows.map((r) => [r.metric, r.tags, r.value, r.us]);

    it('stores what the official InfluxDB client writes (v2, Token, gzip): metric <measurement>_<field>, tags, values and times read back exactly', async () => {
      const key = await ctx.t.key(['ingest'], 'telegraf-v2');
      const T0 = base();
      const write = writer(key, 'telegraf');
      const points: Point[] = [];
      for (let i = 0; i < 20; i++) {
        for (const host of ['a', 'b']) {
          points.push(
            new Point('cpu')
              .tag('host', host)
              .tag('cpu', 'cpu-total')
              .floatField('usage_user', i + 0.5)
              .intField('usage_system', i * 2)
              .uintField('ctx_switches', 1_000_000 + i)
              .booleanField('online', i % 2 === 0)
              .stringField('state', 'running') // skipped: Timescope stores numbers
              .timestamp(new Date(T0 + i * SECOND)),
          );
        }
        points.push(
          new Point('load')
            .tag('host', 'a')
            .floatField('value', i / 10)
            .timestamp(new Date(T0 + i * SECOND)),
        );
      }
      write.writePoints(points); // about 4 KB: the client gzips it (gzipThreshold 1000)
      await write.close();
      assert.equal(await count('telegraf'), 20 * (2 * 4 + 1));

      // Through the query API, per second: values and times exactly as written.
      const q = await ctx.t.get(
        `/api/v1/metrics/query?metric=cpu_usage_user&source=telegraf&tags=host:b&from=${T0}&to=${T0 + 20 * SECOND}&granularity=1s&aggregation=last`,
      );
      assert.equal(q.status, 200, q.body);
      assert.deepEqual(
        q.json.data_points.map((p: { timestamp: string; value: number }) => [p.timestamp, p.value]),
        Array.from({ length: 20 }, (_, i) => [new Date(T0 + i * SECOND).toISOString(), i + 0.5]),
      );
      const sys = await ctx.t.get(
        `/api/v1/metrics/query?metric=cpu_usage_system&source=telegraf&tags=host:a&tags=cpu:cpu-total&from=${T0}&to=${T0 + 20 * SECOND}&granularity=1s&aggregation=last`,
      );
      assert.deepEqual(
        sys.json.data_points.map((p: { value: number }) => p.value),
        Array.from({ length: 20 }, (_, i) => i * 2),
      );
      const online = await ctx.t.get(
        `/api/v1/metrics/query?metric=cpu_online&tags=host:a&from=${T0}&to=${T0 + 4 * SECOND}&granularity=1s&aggregation=last`,
      );
      assert.deepEqual(
        online.json.data_points.map((p: { value: number }) => p.value),
        [1, 0, 1, 0],
      );
      const load = await ctx.t.get(
        `/api/v1/metrics/query?metric=load&source=telegraf&from=${T0}&to=${T0 + 3 * SECOND}&granularity=1s&aggregation=last`,
      );
      assert.deepEqual(
        load.json.data_points.map((p: { value: number }) => p.value),
        [0, 0.1, 0.2],
      );
      const names = (await ctx.t.get('/api/v1/metrics/names')).json;
      const listed = JSON.stringify(names);
      for (const m of ['cpu_usage_user', 'cpu_usage_system', 'cpu_ctx_switches', 'cpu_online', 'load'])
        assert.ok(listed.includes(`"${m}"`), m);
      assert.ok(!listed.includes('cpu_state'), 'string fields are not stored');
      const tags = (
        await ctx.t.sql.query(
          `SELECT DISTINCT tags::text AS t FROM metrics WHERE metric = 'cpu_ctx_switches' ORDER BY 1`,
        )
      ).rows.map((r) => JSON.parse(r.t));
      assert.deepEqual(tags, [
        { cpu: 'cpu-total', host: 'a' },
        { cpu: 'cpu-total', host: 'b' },
      ]);
    });

    it('keeps microseconds of ns, us and ms timestamps, and reads the v2 precisions', async () => {
      const key = await ctx.t.key(['ingest']);
      const T0 = base();
      const us = BigInt(T0) * 1000n + 123_456n;
      for (const [precision, ts, metric] of [
        ['ns', `${us}789`, 'p_ns'],
        ['us', `${us}`, 'p_us'],
        ['ms', `${T0 + 123}`, 'p_ms'],
        ['s', `${T0 / SECOND}`, 'p_s'],
      ] as const) {
        const write = writer(key, 'precision', precision);
        write.writeRecord(`${metric} value=1 ${ts}`);
        await write.close();
      }
      // A Date through the client in each precision.
      const write = writer(key, 'precision', 'ms');
      write.writePoint(new Point('p_date').floatField('value', 2).timestamp(new Date(T0 + 7)));
      await write.close();
      assert.deepEqual(await stored('precision'), [
        ['p_date', {}, 2, String(BigInt(T0 + 7) * 1000n)],
        ['p_ms', {}, 1, String(BigInt(T0 + 123) * 1000n)],
        ['p_ns', {}, 1, String(us)],
        ['p_s', {}, 1, String(BigInt(T0) * 1000n)],
        ['p_us', {}, 1, String(us)],
      ]);
    });

    it('lands a nanosecond time on one point whether sent as line protocol or as JSON (epoch ns, ISO): finer than a µs is dropped', async () => {
      const us = BigInt(base()) * 1000n + 123_456n;
      // 700 ns past the microsecond: rounding would give the next one. As a JSON number the time is a
      // double (within 128 ns of it here), which still falls in the same microsecond.
      const ns = `${us}700`;
      const iso = `${new Date(Number(us / 1000n)).toISOString().slice(0, -1)}456700Z`;
      const json = (body: string, query = '?precision=ns') =>
        ctx.t.request('POST', `/api/v1/metrics${query}`, body, { 'content-type': 'application/json' });
      const writes: Array<[string, () => Promise<{ status: number }>]> = [
        ['line protocol', () => post('/api/v2/write?bucket=both-ways&precision=ns', `both value=1 ${ns}`)],
        [
          'JSON (scanner)',
          () => json(`{"source":"both-ways","metrics":[{"name":"both","value":2,"timestamp":${ns}}]}`),
        ],
        [
          'JSON (decoder)',
          () => json(`{"source":"both-ways","x":0,"metrics":[{"name":"both","value":3,"timestamp":${ns}}]}`),
        ],
        [
          'JSON batch',
          () =>
            ctx.t.request(
              'POST',
              '/api/v1/metrics/batch?precision=ns',
              `{"batches":[{"source":"both-ways","metrics":[{"name":"both","value":4,"timestamp":${ns}}]}]}`,
              { 'content-type': 'application/json' },
            ),
        ],
        [
          'JSON ISO',
          () => json(`{"source":"both-ways","metrics":[{"name":"both","value":5,"timestamp":"${iso}"}]}`, ''),
        ],
      ];
      for (const [i, [how, write]] of writes.entries()) {
        const r = await write();
        assert.ok(r.status === 200 || r.status === 204, `${how}: ${r.status}`);
        assert.deepEqual(await stored('both-ways'), [['both', {}, i + 1, String(us)]], how);
      }
    });

    it('stores nothing of a request with one bad line, and answers 400 naming the line, as the client shows it', async () => {
      const key = await ctx.t.key(['ingest']);
      const T0 = base();
      const before = await seriesCount();
      const write = writer(key, 'atomic', 'ms');
      write.writeRecords([
        `good,host=a value=1 ${T0}`,
        `bad,host=a value=twelve ${T0}`,
        `new_series,host=z value=3 ${T0}`,
      ]);
      const err = await flushError(write.flush());
      await write.close().catch(() => undefined);
      assert.equal(err.statusCode, 400);
      assert.equal(err.json.code, 'invalid');
      assert.equal(err.message, err.json.message); // what the client shows is ours
      assert.match(err.message, /^line 2: field "value": "twelve" is not a number.*: bad,host=a value=twelve/);
      assert.equal(err.json.error.code, 'INVALID_REQUEST');
      assert.equal(err.json.error.details.line, 2);
      assert.equal(await count('atomic'), 0);
      assert.equal(await seriesCount(), before, 'not even new series');
    });

    it('takes gzip bodies, counts retried requests once (last write wins), and tells what was written in headers', async () => {
      const T0 = base();
      const lines = (v: number) =>
        Array.from(
          { length: 50 },
          (_, i) => `disk,host=a,path=/ used=${v + i}i,free=${v * 2}i,label="x" ${(T0 + i * SECOND) * 1e6}`,
        ).join('\n');
      let r = await post('/api/v2/write?bucket=retry&org=o', gzipSync(lines(1)), { 'content-encoding': 'gzip' });
      assert.equal(r.status, 204, await r.text());
      assert.equal(r.headers.get('x-timescope-points-written'), '100');
      assert.equal(r.headers.get('x-timescope-string-fields-skipped'), '50');
      r = await post('/api/v2/write?bucket=retry&org=o', gzipSync(lines(1)), { 'content-encoding': 'gzip' });
      assert.equal(r.status, 204);
      assert.equal(await count('retry'), 100);
      r = await post('/api/v2/write?bucket=retry', lines(10));
      assert.equal(r.status, 204);
      assert.equal(await count('retry'), 100);
      const used = (
        await ctx.t.sql.query(
          `SELECT value FROM metrics WHERE source = 'retry' AND metric = 'disk_used' ORDER BY time LIMIT 2`,
        )
      ).rows;
      assert.deepEqual(
        used.map((x) => x.value),
        [10, 11],
      );
    });

    it('serves InfluxDB 1.x /write: db is the source, its precisions, the key as Basic password; ?u=&p= are not read', async () => {
      const key = await ctx.t.key(['ingest'], 'telegraf-v1');
      const basic = { authorization: `Basic ${Buffer.from(`telegraf:${key}`).toString('base64')}` };
      const T0 = base();
      const cases: Array<[string, string]> = [
        ['s', String(T0 / SECOND)],
        ['ms', String(T0 + 1)],
        ['u', String((T0 + 2) * 1000)],
        ['n', `${T0 + 3}000000`],
        ['m', String(Math.floor(T0 / 60_000))],
        ['h', String(Math.floor(T0 / 3_600_000))],
      ];
      for (const [precision, ts] of cases) {
        const r = await post(
          `/write?db=telegraf_v1&rp=autogen&precision=${precision}`,
          `v1_${precision},host=a value=1 ${ts}\n`,
          basic,
        );
        assert.equal(r.status, 204, `${precision}: ${await r.text()}`);
      }
      const times = (
        await ctx.t.sql.query(
          `SELECT metric, (extract(epoch FROM time) * 1000)::float8 AS ms FROM metrics WHERE source = 'telegraf_v1' ORDER BY metric`,
        )
      ).rows;
      assert.deepEqual(
        times.map((x) => [x.metric, x.ms]),
        [
          ['v1_h', Math.floor(T0 / 3_600_000) * 3_600_000],
          ['v1_m', Math.floor(T0 / 60_000) * 60_000],
          ['v1_ms', T0 + 1],
          ['v1_n', T0 + 3],
          ['v1_s', T0],
          ['v1_u', T0 + 2],
        ],
      );
      // The v1 query-string credentials: refused, with the way that works.
      const viaQuery = await fetch(`${url}/write?db=telegraf_v1&u=telegraf&p=${key}`, {
        method: 'POST',
        body: `q value=1`,
        headers: { 'content-type': 'text/plain' },
      });
      assert.equal(viaQuery.status, 401);
      const body = await json(viaQuery);
      assert.equal(body.code, 'unauthorized');
      assert.match(body.message, /\?u=&p= are not read.*Basic auth/);
      assert.equal(body.error.code, 'UNAUTHORIZED');
      // Missing or wrong parameters.
      let r = await post('/write', 'q value=1', basic);
      assert.equal(r.status, 400);
      assert.match((await json(r)).message, /db is required/);
      r = await post('/write?db=x&precision=us', 'q value=1', basic); // `us` is v1 too (InfluxDB 1.x reads it)
      assert.equal(r.status, 204);
      r = await post('/api/v2/write?bucket=x&precision=h', 'q value=1');
      assert.equal(r.status, 400);
      assert.match((await json(r)).error.message, /precision must be one of ns, us, ms, s/);
      r = await post('/api/v2/write?org=o', 'q value=1');
      assert.equal(r.status, 400);
      assert.equal((await json(r)).error.details.parameter, 'bucket');
    });

    it('lets an ingest key write; a read-only key gets 403 and no key 401, as the client reports them', async () => {
      const reader = await ctx.t.key(['read'], 'dashboards');
      const write = writer(reader, 'forbidden');
      write.writeRecord('m value=1');
      const err = await flushError(write.flush());
      await write.close().catch(() => undefined);
      assert.equal(err.statusCode, 403);
      assert.equal(err.json.code, 'forbidden');
      assert.match(err.message, /lacks the ingest scope/);
      const anonymous = await fetch(`${url}/api/v2/write?bucket=x`, {
        method: 'POST',
        body: 'm value=1',
        headers: { 'content-type': 'text/plain' },
      });
      assert.equal(anonymous.status, 401);
      assert.equal((await json(anonymous)).code, 'unauthorized');
      assert.equal(await count('forbidden'), 0);
    });

    it('answers 429 with Retry-After past the key rate limit, which the client reads', async () => {
      const key = await ctx.t.key(['ingest'], 'slow', { rate_limits: { ingest: 1 } });
      let write = writer(key, 'limited');
      write.writeRecord('m value=1');
      await write.close();
      write = writer(key, 'limited');
      write.writeRecord('m value=2');
      const err = await flushError(write.flush());
      await write.close().catch(() => undefined);
      assert.equal(err.statusCode, 429);
      assert.equal(err.json.code, 'too many requests');
      assert.ok(err.retryAfter() > 0, `Retry-After ${err.retryAfter()}`);
    });

    it('takes text/plain, octet-stream, form-encoded (curl --data-binary) and no Content-Type; JSON there, and text on JSON routes, get 415', async () => {
      const T0 = base();
      for (const [i, type] of [
        'text/plain',
        'application/octet-stream',
        'application/x-www-form-urlencoded',
        '',
      ].entries()) {
        const r = await ctx.t.request(
          'POST',
          '/api/v2/write?bucket=types',
          `m,type=${i} value=${i} ${T0 * 1e6}`,
          type ? { 'content-type': type } : {},
        );
        assert.equal(r.status, 204, `${type}: ${r.body}`);
      }
      assert.equal(await count('types'), 4);
      const asJson = await ctx.t.request('POST', '/api/v2/write?bucket=types', '{"m":1}', {
        'content-type': 'application/json',
      });
      assert.equal(asJson.status, 415);
      assert.equal(asJson.json.code, 'unsupported media type');
      assert.match(asJson.json.error.message, /text\/plain or .* or none \(got application\/json\)/);
      const text = await ctx.t.request('POST', '/api/v1/metrics', 'm value=1', { 'content-type': 'text/plain' });
      assert.equal(text.status, 415);
      assert.equal(text.json.code, undefined, 'the InfluxDB fields are for the InfluxDB routes only');
    });

    it('refuses too many points, too large and gzip-bomb bodies with 413, and times outside the window with 400 naming the line', async () => {
      const T0 = base();
      const many = Array.from({ length: 1001 }, (_, i) => `m value=${i} ${(T0 + i) * 1e6}`).join('\n');
      let r = await post('/api/v2/write?bucket=limits', many);
      assert.equal(r.status, 413);
      let body = await json(r);
      assert.equal(body.code, 'request too large');
      assert.match(body.message, /INGEST_MAX_POINTS_PER_REQUEST/);
      r = await post('/api/v2/write?bucket=limits', `m value=1 ${T0 * 1e6}\n# ${'x'.repeat(300_000)}`);
      assert.equal(r.status, 413);
      r = await post('/api/v2/write?bucket=limits', gzipSync(Buffer.alloc(5_000_000, 0x23)), {
        'content-encoding': 'gzip',
      });
      assert.equal(r.status, 413);
      // Not gzip though it says so: a 400 saying so, in InfluxDB's shape beside the envelope.
      for (const path of ['/api/v2/write?bucket=limits', '/write?db=limits']) {
        r = await post(path, `m value=1 ${T0 * 1e6}`, { 'content-encoding': 'gzip' });
        assert.equal(r.status, 400);
        body = await json(r);
        assert.equal(body.code, 'invalid');
        assert.match(body.message, /^Request body could not be decoded as Content-Encoding gzip: /);
        assert.equal(body.error.code, 'INVALID_REQUEST');
        assert.equal(body.error.message, body.message);
      }
      r = await post(
        '/api/v2/write?bucket=limits&precision=s',
        `m value=1 ${T0 / SECOND}\nm value=2 ${T0 / SECOND + 86_400}\n`,
      );
      assert.equal(r.status, 400);
      body = await json(r);
      assert.match(body.message, /^line 2: timestamp \d+ is more than 600 s in the future/);
      r = await post('/api/v2/write?bucket=limits', `m value=1 ${T0 / SECOND}`);
      assert.match((await json(r)).message, /older than the retention of 7 days .*it looks like epoch s/);
      assert.equal(await count('limits'), 0);
    });
  },
  { INGEST_MAX_POINTS_PER_REQUEST: '1000', INGEST_MAX_BODY_BYTES: '262144', RATE_LIMIT_ENABLED: 'true' },
);
