import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { deflateSync, gzipSync } from 'node:zlib';
import { it } from 'node:test';
import { SeriesResolver } from '../../src/storage/series-resolver.js';
import { describeEachFlavour } from '../support/suite.js';

const iso = (ms: number) => new Date(ms).toISOString();
const T0 = Date.now() - 3_600_000;

describeEachFlavour(
  'ingest',
  (ctx) => {
    const count = async (where = 'true', params: unknown[] = []) =>
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM metrics WHERE ${where}`, params)).rows[0].n);

    it('stores the reference submission and answers the reference shape', async () => {
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'fl_server',
        timestamp: iso(T0),
        metrics: [
          { name: 'cpu_usage', value: 45.2, unit: 'percent', tags: { host: 'fl-server-01', experiment_id: 'exp_001' } },
          { name: 'memory_usage', value: 512.5, unit: 'MB', tags: { host: 'fl-server-01', experiment_id: 'exp_001' } },
          { name: 'active_clients', value: 5, unit: 'count', tags: { experiment_id: 'exp_001' } },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.status, 'success');
      assert.equal(r.json.metrics_accepted, 3);
      assert.match(r.json.batch_id, /^batch_/);
      assert.ok(!Number.isNaN(Date.parse(r.json.timestamp)));
      const rows = (
        await ctx.t.sql.query(
          `SELECT metric, source, tags, unit, value, time FROM metrics WHERE source = 'fl_server' ORDER BY metric`,
        )
      ).rows;
      assert.deepEqual(
        rows.map((x) => [x.metric, x.unit, x.value, x.tags, x.time.getTime()]),
        [
          ['active_clients', 'count', 5, { experiment_id: 'exp_001' }, T0],
          ['cpu_usage', 'percent', 45.2, { host: 'fl-server-01', experiment_id: 'exp_001' }, T0],
          ['memory_usage', 'MB', 512.5, { host: 'fl-server-01', experiment_id: 'exp_001' }, T0],
        ],
      );
    });

    it('accepts batches, the system-monitor shape with a trailing slash, and the v2 app shape', async () => {
      let r = await ctx.t.post('/api/v1/metrics/batch', {
        batches: [
          {
            source: 'policy_engine',
            timestamp: iso(T0),
            metrics: [{ name: 'policies_evaluated', value: 150, unit: 'count' }],
          },
          {
            source: 'sdn_controller',
            timestamp: iso(T0),
            metrics: [{ name: 'flows_installed', value: 25, unit: 'count' }],
          },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.metrics_accepted, 2);
      r = await ctx.t.post('/api/v1/metrics/', { service: 'climate-api', metric_type: 'cpu', value: 45.2 });
      assert.equal(r.status, 200, r.body);
      r = await ctx.t.post('/api/v2/app/my-app/metrics', {
        metrics: [
          { name: 'cpu_usage', value: 75.5, timestamp: T0, tags: { host: 'server1' }, profileId: 'profile123' },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(await count(`source IN ('policy_engine', 'sdn_controller', 'climate-api')`), 3);
      const app = (await ctx.t.sql.query(`SELECT tags FROM metrics WHERE source = 'my-app'`)).rows[0];
      assert.deepEqual(app.tags, { host: 'server1', profileId: 'profile123' });
    });

    it('is idempotent: a retried batch stores each point once, last write wins', async () => {
      const body = (v: number) => ({
        source: 'retry',
        metrics: [0, 1, 2].map((i) => ({ name: 'req', value: v + i, timestamp: T0 + i * 1000 })),
      });
      for (const v of [1, 1, 10]) assert.equal((await ctx.t.post('/api/v1/metrics', body(v))).status, 200);
      const rows = (await ctx.t.sql.query(`SELECT value FROM metrics WHERE source = 'retry' ORDER BY time`)).rows;
      assert.deepEqual(
        rows.map((x) => x.value),
        [10, 11, 12],
      );
    });

    it('keeps the last of two points with the same series and time in one request', async () => {
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'dup',
        metrics: [
          { name: 'd', value: 1, timestamp: T0 },
          { name: 'd', value: 2, timestamp: T0 },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual((await ctx.t.sql.query(`SELECT value FROM metrics WHERE source = 'dup'`)).rows, [{ value: 2 }]);
    });

    it('keeps the last of them also when the tags are spelled in another order and other series come between', async () => {
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'dup-spelled',
        metrics: [
          { name: 'd', value: 1, timestamp: T0, tags: { a: '1', b: '2' } },
          { name: 'z', value: 5, timestamp: T0 },
          { name: 'd', value: 2, timestamp: T0, tags: { b: '2', a: '1' } },
          { name: 'c', value: 6, timestamp: T0 },
          { name: 'd', value: 3, timestamp: T0, tags: { a: '1', b: '2' } },
          { name: 'd', value: 4, timestamp: T0 + 1000, tags: { b: '2', a: '1' } },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(
        (await ctx.t.sql.query(`SELECT metric, value FROM metrics WHERE source = 'dup-spelled' ORDER BY metric, time`))
          .rows,
        [
          { metric: 'c', value: 6 },
          { metric: 'd', value: 3 },
          { metric: 'd', value: 4 },
          { metric: 'z', value: 5 },
        ],
      );
    });

    it('accepts out-of-order points within a series', async () => {
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'ooo',
        metrics: [3, 1, 2].map((i) => ({ name: 'o', value: i, timestamp: T0 + i * 1000 })),
      });
      assert.equal(r.status, 200);
      assert.deepEqual(
        (await ctx.t.sql.query(`SELECT value FROM metrics WHERE source = 'ooo' ORDER BY time`)).rows.map(
          (x) => x.value,
        ),
        [1, 2, 3],
      );
    });

    it('rejects a request with one bad point and stores none of it', async () => {
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'atomic',
        metrics: [
          { name: 'a', value: 1 },
          { name: 'a', value: 2 },
          { name: 'a', value: '3' },
        ],
      });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.code, 'INVALID_REQUEST');
      assert.equal(r.json.error.details.field, 'metrics[2].value');
      assert.ok(r.json.error.timestamp);
      assert.equal(await count(`source = 'atomic'`), 0);
      assert.equal(
        Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series WHERE source = 'atomic'`)).rows[0].n),
        0,
      );
    });

    it('stores edge values bit-exact', async () => {
      // JSON.stringify(-0) gives "0": write the body by hand to send a real -0.
      const values = ['-0', '5e-324', '1e296', '-1e296']; // ±1e296: the largest magnitude stored (MAX_ABS_VALUE)
      const body = `{"source":"edge","metrics":[${values.map((v, i) => `{"name":"e","value":${v},"timestamp":${T0 + i}}`).join(',')}]}`;
      const r = await ctx.t.request('POST', '/api/v1/metrics', body, { 'content-type': 'application/json' });
      assert.equal(r.status, 200, r.body);
      const rows = (
        await ctx.t.sql.query(
          `SELECT encode(float8send(value), 'hex') AS bits FROM metrics WHERE source = 'edge' ORDER BY time`,
        )
      ).rows;
      const bits = values.map((v) => {
        const b = Buffer.alloc(8);
        b.writeDoubleBE(Number(v));
        return b.toString('hex');
      });
      assert.deepEqual(
        rows.map((x) => x.bits),
        bits,
      );
    });

    it('refuses 1e309 (Infinity after parsing) and keeps the documented precision of integers past 2^53', async () => {
      const inf = await ctx.t.request(
        'POST',
        '/api/v1/metrics',
        '{"source":"big","metrics":[{"name":"b","value":1e309}]}',
        { 'content-type': 'application/json' },
      );
      assert.equal(inf.status, 400);
      assert.equal(inf.json.error.details.field, 'metrics[0].value');
      const big = await ctx.t.request(
        'POST',
        '/api/v1/metrics',
        `{"source":"big","metrics":[{"name":"b","value":9007199254740993,"timestamp":${T0}}]}`,
        { 'content-type': 'application/json' },
      );
      assert.equal(big.status, 200);
      // Values are IEEE-754 doubles (README): the nearest double is stored.
      assert.equal(
        (await ctx.t.sql.query(`SELECT value FROM metrics WHERE source = 'big'`)).rows[0].value,
        9007199254740992,
      );
    });

    it('stores unicode and SQL metacharacters literally', async () => {
      const tags = { who: '👩‍💻\u202E', q: `'; DROP TABLE metrics;-- " \\ % _` };
      const r = await ctx.t.post('/api/v1/metrics', { source: "o'brien", metrics: [{ name: 'u', value: 1, tags }] });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(
        (await ctx.t.sql.query(`SELECT tags FROM metrics WHERE source = $1`, ["o'brien"])).rows[0].tags,
        tags,
      );
    });

    it('takes gzip bodies', async () => {
      const body = gzipSync(JSON.stringify({ source: 'gz', metrics: [{ name: 'g', value: 1 }] }));
      const r = await ctx.t.request('POST', '/api/v1/metrics', body, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(await count(`source = 'gz'`), 1);
    });

    it('converts ?precision=s', async () => {
      const sec = Math.floor(T0 / 1000);
      const r = await ctx.t.post('/api/v1/metrics?precision=s', {
        source: 'prec',
        metrics: [{ name: 'p', value: 1, timestamp: sec }],
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(
        (await ctx.t.sql.query(`SELECT time FROM metrics WHERE source = 'prec'`)).rows[0].time.getTime(),
        sec * 1000,
      );
      const bad = await ctx.t.post('/api/v1/metrics?precision=minutes', { source: 'prec', metrics: [] });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.details.parameter, 'precision');
    });

    it('keeps first_seen/last_seen of each series, written after the fact', async () => {
      const times = [T0 - 600_000, T0, T0 - 1_200_000];
      for (const t of times)
        assert.equal(
          (await ctx.t.post('/api/v1/metrics', { source: 'seen', metrics: [{ name: 's', value: 1, timestamp: t }] }))
            .status,
          200,
        );
      await ctx.t.app.get(SeriesResolver).flushSeen();
      const row = (await ctx.t.sql.query(`SELECT first_seen, last_seen FROM series WHERE source = 'seen'`)).rows[0];
      assert.equal(row.first_seen.getTime(), T0 - 1_200_000);
      assert.equal(row.last_seen.getTime(), T0);
    });

    it('stores backfilled days (partitions made on demand) within retention', async () => {
      const days = [1, 3, 6].map((d) => Date.now() - d * 86_400_000);
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'backfill',
        metrics: days.map((t) => ({ name: 'b', value: 1, timestamp: t })),
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(await count(`source = 'backfill'`), 3);
    });

    it('leaves no new series and no unit change behind when the write fails in the database', async () => {
      const body = (unit: string) => ({
        source: 'rolled_back',
        metrics: [
          { name: 'known', value: 1, unit, timestamp: T0 },
          { name: 'ghost', value: 2, tags: { run: 'a' }, timestamp: T0 },
          { name: 'refused', value: 666, timestamp: T0 },
        ],
      });
      assert.equal(
        (
          await ctx.t.post('/api/v1/metrics', {
            source: 'rolled_back',
            metrics: [{ name: 'known', value: 0, unit: 's', timestamp: T0 - 1000 }],
          })
        ).status,
        200,
      );
      const series = async () =>
        (await ctx.t.sql.query(`SELECT metric, unit FROM series WHERE source = 'rolled_back' ORDER BY metric`)).rows;
      // A fault past validation: the database refuses one of the points, so the whole write rolls back.
      await ctx.t.sql.query(`CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.value = 666 THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$`);
      await ctx.t.sql.query(
        `CREATE TRIGGER refuse_666 BEFORE INSERT ON points FOR EACH ROW EXECUTE FUNCTION refuse_666()`,
      );
      try {
        for (let attempt = 0; attempt < 2; attempt++) {
          const r = await ctx.t.post('/api/v1/metrics', body('ms'));
          assert.equal(r.status, 500, r.body);
          assert.deepEqual(await series(), [{ metric: 'known', unit: 's' }]);
        }
      } finally {
        await ctx.t.sql.query(`DROP TRIGGER refuse_666 ON points; DROP FUNCTION refuse_666()`);
      }
      // Nothing of the failed writes was cached either: the same request now stores its series and points.
      const ok = await ctx.t.post('/api/v1/metrics', body('ms'));
      assert.equal(ok.status, 200, ok.body);
      assert.deepEqual(await series(), [
        { metric: 'ghost', unit: null },
        { metric: 'known', unit: 'ms' },
        { metric: 'refused', unit: null },
      ]);
      assert.equal(await count(`source = 'rolled_back'`), 4);
      const q = await ctx.t.get(
        `/api/v1/metrics/query?metric=ghost&source=rolled_back&from=${iso(T0 - 60_000)}&to=${iso(T0 + 60_000)}&aggregation=sum`,
      );
      assert.equal(q.status, 200, q.body);
      assert.deepEqual(
        q.json.data_points.map((p: { value: number }) => p.value),
        [2],
      );
    });
  },
  { METRICS_RETENTION_DAYS: '7' },
);

describeEachFlavour(
  'ingest limits and bad input',
  (ctx) => {
    const post = (body: unknown, headers?: Record<string, string>) => ctx.t.post('/api/v1/metrics', body, headers);
    const stored = async () => Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM points`)).rows[0].n);

    it('answers malformed JSON with 400 in the envelope', async () => {
      for (const raw of ['[{"name":"a"', '{"source": NaN}', '{"value": Infinity}', '']) {
        const r = await ctx.t.request('POST', '/api/v1/metrics', raw, { 'content-type': 'application/json' });
        assert.equal(r.status, 400, raw);
        assert.equal(r.json.error.code, 'INVALID_REQUEST');
      }
    });

    it('answers null, {} and "x" with 400', async () => {
      for (const raw of ['null', '{}', '"x"', '[]']) {
        const r = await ctx.t.request('POST', '/api/v1/metrics', raw, { 'content-type': 'application/json' });
        assert.equal(r.status, 400, raw);
      }
    });

    it('refuses __proto__ in the body', async () => {
      const r = await ctx.t.request(
        'POST',
        '/api/v1/metrics',
        '{"source":"s","metrics":[{"name":"a","value":1,"tags":{"__proto__":{"x":"1"}}}]}',
        { 'content-type': 'application/json' },
      );
      assert.equal(r.status, 400);
      assert.equal(({} as Record<string, unknown>).x, undefined);
      assert.equal(r.json.error.details.field, 'metrics[0].tags.__proto__');
    });

    it('answers a __proto__ or constructor.prototype key anywhere with a 400 that says so, not "not valid JSON"', async () => {
      const cases: Array<[string, string, string]> = [
        ['/api/v1/metrics', '{"source":"js","pipeline":{"__proto__":1},"metrics":[]}', 'pipeline.__proto__'],
        ['/api/v1/metrics', '{"__proto__":{},"source":"s","metrics":[]}', '__proto__'],
        [
          '/api/v1/metrics',
          '{"source":"s","x":[1,{"constructor":{"prototype":{}}}],"metrics":[]}',
          'x[1].constructor.prototype',
        ],
        [
          '/api/v1/metrics/batch',
          '{"batches":[{"source":"s","metrics":[],"m":{"\\u005f_proto__":null}}]}',
          'batches[0].m.__proto__',
        ],
        ['/v1/metrics', '{"resourceMetrics":[],"constructor":{"prototype":null}}', 'constructor.prototype'],
        ['/api/v1/metrics/query/multi', '{"queries":[{"metric":"m","__proto__":[]}]}', 'queries[0].__proto__'],
      ];
      for (const [url, raw, field] of cases) {
        const r = await ctx.t.request('POST', url, raw, { 'content-type': 'application/json' });
        assert.equal(r.status, 400, `${url} ${raw}: ${r.body}`);
        assert.equal(r.json.error.code, 'INVALID_REQUEST');
        const key = field.endsWith('constructor.prototype') ? 'constructor.prototype' : '__proto__';
        assert.equal(
          r.json.error.message,
          `Request body holds a ${key} key (${field}): Timescope refuses __proto__ and constructor.prototype keys anywhere in a JSON body`,
        );
        assert.deepEqual(r.json.error.details, { field });
        assert.notEqual(r.headers.connection, 'close', 'the body was read in full: the connection stays');
      }
      // Malformed JSON still says so; "constructor" and "prototype" on their own are data.
      const bad = await ctx.t.request('POST', '/api/v1/metrics', '{"__proto__":', {
        'content-type': 'application/json',
      });
      assert.match(bad.json.error.message, /^Malformed JSON body/);
      const plain = await post({ source: 's', constructor: { x: 1 }, prototype: 1, metrics: [] });
      assert.doesNotMatch(plain.body, /__proto__|constructor\.prototype/);
      // Nested far deeper than a recursive walk's stack (and past 256 KB, parsed in a macrotask of its
      // own), with the key at the top: the shallowest is named, and the service lives on.
      const deep = `{"a":${'['.repeat(130_000)}${']'.repeat(130_000)},"__proto__":0}`;
      const r = await ctx.t.request('POST', '/api/v1/metrics', deep, { 'content-type': 'application/json' });
      assert.equal(r.status, 400, r.body.slice(0, 300));
      assert.equal(r.json.error.details.field, '__proto__');
      assert.equal((await ctx.t.get('/health/live')).status, 200);
    });

    it('answers a body over INGEST_MAX_BODY_BYTES with 413, also when gzipped', async () => {
      const big = JSON.stringify({
        source: 's',
        metrics: [{ name: 'a', value: 1, tags: { pad: 'x'.repeat(100) } }],
      }).padEnd(3_000_000, ' ');
      let r = await ctx.t.request('POST', '/api/v1/metrics', big, { 'content-type': 'application/json' });
      assert.equal(r.status, 413);
      assert.equal(r.json.error.code, 'PAYLOAD_TOO_LARGE');
      r = await ctx.t.request('POST', '/api/v1/metrics', gzipSync(big), {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      });
      assert.equal(r.status, 413);
    });

    it('answers 413 for a streamed body without Content-Length past the limit, and for a gzip bomb', async () => {
      const chunk = Buffer.alloc(64 * 1024, ' ');
      let sent = 0;
      const payload = new Readable({
        read() {
          sent += chunk.length;
          this.push(sent > 8 * 1024 * 1024 ? null : chunk); // 8 MiB of whitespace, no length announced
        },
      });
      const res = await ctx.t.app
        .getHttpAdapter()
        .getInstance()
        .inject({
          method: 'POST',
          url: '/api/v1/metrics',
          headers: { ...ctx.t.authHeaders, 'content-type': 'application/json' },
          payload,
        });
      assert.equal(res.statusCode, 413, res.body);
      assert.equal(JSON.parse(res.body).error.code, 'PAYLOAD_TOO_LARGE');
      // 64 KiB of gzip that inflates to 64 MiB, as 64 members of 1 MiB (compressing 64 MiB at once
      // cost ~0.9 s of CPU a run): refused at the decoded limit.
      const bomb = Buffer.concat(Array<Buffer>(64).fill(gzipSync(Buffer.alloc(1024 * 1024, ' '), { level: 9 })));
      const t0 = Date.now();
      const r = await ctx.t.request('POST', '/api/v1/metrics', bomb, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      });
      assert.equal(r.status, 413);
      assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
      assert.equal(await stored(), 0);
    });

    it('answers a body that is not of its Content-Encoding with 400 saying so, in the envelope', async () => {
      const body = JSON.stringify({ source: 's', metrics: [{ name: 'enc', value: 1 }] });
      const cases: Array<[string, Buffer]> = [
        ['gzip', Buffer.from(body)], // not gzip at all (zlib: "incorrect header check")
        ['GZip', gzipSync(body).subarray(0, 20)], // cut short ("unexpected end of file")
        ['x-gzip', deflateSync(body)],
        ['deflate', Buffer.from(body)],
      ];
      for (const [encoding, payload] of cases) {
        const r = await ctx.t.request('POST', '/api/v1/metrics', payload, {
          'content-type': 'application/json',
          'content-encoding': encoding,
        });
        assert.equal(r.status, 400, encoding);
        assert.equal(r.json.error.code, 'INVALID_REQUEST');
        assert.match(
          r.json.error.message,
          new RegExp(`^Request body could not be decoded as Content-Encoding ${encoding}: `),
        );
        assert.deepEqual(r.json.error.details, { header: 'content-encoding' });
      }
      assert.equal(await stored(), 0);
    });

    it('answers too many points with 413', async () => {
      const r = await post({ source: 's', metrics: Array.from({ length: 101 }, (_, i) => ({ name: 'a', value: i })) });
      assert.equal(r.status, 413);
    });

    it('answers 415 for another media type or encoding', async () => {
      let r = await ctx.t.request('POST', '/api/v1/metrics', 'cpu value=1', { 'content-type': 'text/plain' });
      assert.equal(r.status, 415);
      assert.equal(r.json.error.code, 'UNSUPPORTED_MEDIA_TYPE');
      r = await ctx.t.request('POST', '/api/v1/metrics', '{}', {
        'content-type': 'application/json',
        'content-encoding': 'br',
      });
      assert.equal(r.status, 415);
    });

    it('refuses deep nesting without crashing', async () => {
      const deep = '['.repeat(10_000) + ']'.repeat(10_000);
      const r = await ctx.t.request('POST', '/api/v1/metrics', `{"source":"s","metrics":${deep}}`, {
        'content-type': 'application/json',
      });
      assert.equal(r.status, 400);
    });

    it('refuses 100k tags fast', async () => {
      const tags = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v']));
      const t0 = Date.now();
      const r = await post({ source: 's', metrics: [{ name: 'a', value: 1, tags }] });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.details.field, 'metrics[0].tags');
      assert.ok(Date.now() - t0 < 2_000);
    });

    it('refuses names, tags and timestamps past their limits', async () => {
      const cases: Array<[unknown, string]> = [
        [{ source: 's', metrics: [{ name: 'a'.repeat(10_000), value: 1 }] }, 'metrics[0].name'],
        [{ source: 's', metrics: [{ name: 'a', value: 1, tags: { k: 'x'.repeat(1_000_000) } }] }, 'metrics[0].tags.k'],
        [
          { source: 's', metrics: [{ name: 'a', value: 1, timestamp: Date.now() + 10 * 365 * 86_400_000 }] },
          'metrics[0].timestamp',
        ],
        [
          { source: 's', metrics: [{ name: 'a', value: 1, timestamp: '1970-01-01T00:00:00Z' }] },
          'metrics[0].timestamp',
        ],
        [{ source: 's', metrics: [{ name: 'a', value: 1, tags: { a: 'x\u0000' } }] }, 'metrics[0].tags.a'],
      ];
      for (const [body, field] of cases) {
        const r = await post(body);
        assert.equal(r.status, 400, field);
        assert.equal(r.json.error.details.field, field);
      }
      assert.equal(await stored(), 0);
    });

    it('answers 422 past MAX_SERIES and stores nothing of that request', async () => {
      const metrics = Array.from({ length: 6 }, (_, i) => ({ name: `m${i}`, value: 1 }));
      const r = await post({ source: 'card', metrics });
      assert.equal(r.status, 422);
      assert.equal(r.json.error.details.limit, 'MAX_SERIES');
      assert.equal(await stored(), 0);
    });

    it('counts the new series of writes still on their way against MAX_SERIES', async () => {
      // Two requests of 3 new series each at once: both are resolved before either commits, so the
      // second must see the first's 3 as taken (5 allowed), not only what is stored.
      const body = (source: string) => ({ source, metrics: [0, 1, 2].map((i) => ({ name: `c${i}`, value: 1 })) });
      const answers = await Promise.all([post(body('race-a')), post(body('race-b'))]);
      assert.deepEqual(answers.map((r) => r.status).sort(), [200, 422], answers.map((r) => r.body).join('\n'));
      const series = Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series`)).rows[0].n);
      assert.ok(series <= 5, `${series} series stored, MAX_SERIES is 5`);
      // The refused request's reservation was given back: one new series still fits, three do not.
      assert.equal((await post({ source: 'race-c', metrics: [{ name: 'c0', value: 1 }] })).status, 200);
    });
  },
  { INGEST_MAX_BODY_BYTES: String(2 * 1024 * 1024), INGEST_MAX_POINTS_PER_REQUEST: '100', MAX_SERIES: '5' },
);

describeEachFlavour(
  'ingest buffer limit',
  (ctx) => {
    const request = (source: string, n: number) => ({
      source,
      metrics: Array.from({ length: n }, (_, i) => ({ name: 'q', value: i, timestamp: Date.now() - 60_000 + i })),
    });
    const stored = async (source: string) =>
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM metrics WHERE source = $1`, [source])).rows[0].n);

    it('answers 413 naming INGEST_QUEUE_MAX_POINTS for a request that could never fit the buffer, instead of 503 for ever', async () => {
      const r = await ctx.t.post('/api/v1/metrics', request('huge', 1_500));
      assert.equal(r.status, 413, r.body);
      assert.equal(r.json.error.details.limit, 'INGEST_QUEUE_MAX_POINTS');
      assert.equal(await stored('huge'), 0);
    });

    it('answers 503 + Retry-After while the buffer is full, and stores exactly what it acknowledged', async () => {
      const replies = await Promise.all(
        Array.from({ length: 6 }, (_, i) => ctx.t.post('/api/v1/metrics', request(`full${i}`, 600))),
      );
      const refused = replies.filter((r) => r.status === 503);
      assert.ok(refused.length > 0, replies.map((r) => r.status).join());
      for (const r of refused) {
        assert.equal(r.json.error.details.limit, 'INGEST_QUEUE_MAX_POINTS');
        assert.ok(Number(r.headers['retry-after']) > 0);
      }
      for (const [i, r] of replies.entries()) {
        assert.ok(r.status === 200 || r.status === 503, r.body);
        assert.equal(await stored(`full${i}`), r.status === 200 ? 600 : 0);
      }
    });
  },
  { INGEST_QUEUE_MAX_POINTS: '1000', INGEST_MAX_POINTS_PER_REQUEST: '5000' },
);

describeEachFlavour(
  'ingest into a partition dropped behind the writer',
  (ctx) => {
    it('remakes the partition and still keeps the last of two points with the same series and time', async () => {
      const T = Math.floor((Date.now() - 2 * 86_400_000) / 86_400_000) * 86_400_000 + 3_600_000;
      assert.equal(
        (await ctx.t.post('/api/v1/metrics', { source: 'gone', metrics: [{ name: 'g', value: 0, timestamp: T }] }))
          .status,
        200,
      );
      // The writer believes the day's partition exists; drop it (as retention on another instance would).
      const day = new Date(T).toISOString().slice(0, 10).replace(/-/g, '');
      await ctx.t.sql.query(`DROP TABLE points_p${day}`);
      const r = await ctx.t.post('/api/v1/metrics', {
        source: 'gone',
        metrics: [
          { name: 'g', value: 1, timestamp: T },
          { name: 'g', value: 2, timestamp: T },
        ],
      });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(
        (await ctx.t.sql.query(`SELECT value FROM metrics WHERE source = 'gone'`)).rows.map((x) => x.value),
        [2],
      );
    });
  },
  { METRICS_RETENTION_DAYS: '7' },
  // Native partitions exist on plain PostgreSQL only.
  { flavours: ['postgresql'] },
);

describeEachFlavour(
  'write conflicts',
  (ctx) => {
    it('retries a write the server aborted as a deadlock, and after three retries answers 503 with Retry-After, storing nothing', async () => {
      const body = (unit: string, value: number) => ({
        source: 'locks',
        metrics: [{ name: 'deadlock_probe', value, unit, timestamp: Date.now() - 60_000 }],
      });
      assert.equal((await ctx.t.post('/api/v1/metrics', body('ms', 1))).status, 200);
      // Every change of this series' unit to "s" is aborted as PostgreSQL aborts one side of a deadlock.
      await ctx.t.sql.query(`
        CREATE SEQUENCE deadlock_tries;
        CREATE FUNCTION deadlock_probe() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN PERFORM nextval('deadlock_tries'); RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$;
        CREATE TRIGGER deadlock_probe BEFORE UPDATE ON series FOR EACH ROW WHEN (NEW.unit = 's') EXECUTE FUNCTION deadlock_probe();`);
      try {
        const r = await ctx.t.post('/api/v1/metrics', body('s', 2));
        assert.equal(r.status, 503, r.body);
        assert.equal(r.json.error.code, 'SERVICE_UNAVAILABLE');
        assert.equal(r.headers['retry-after'], '1');
        // The first try and three retries (a sequence's calls are not rolled back).
        assert.equal(Number((await ctx.t.sql.query(`SELECT last_value FROM deadlock_tries`)).rows[0].last_value), 4);
      } finally {
        await ctx.t.sql.query(
          `DROP TRIGGER deadlock_probe ON series; DROP FUNCTION deadlock_probe(); DROP SEQUENCE deadlock_tries`,
        );
      }
      const stored = await ctx.t.sql.query(
        `SELECT p.value, s.unit FROM points p JOIN series s ON s.id = p.series_id WHERE s.metric = 'deadlock_probe'`,
      );
      assert.deepEqual(stored.rows, [{ value: 1, unit: 'ms' }]);
      // Once the conflict is gone, the same request goes through.
      assert.equal((await ctx.t.post('/api/v1/metrics', body('s', 2))).status, 200);
      const after = await ctx.t.sql.query(
        `SELECT count(*)::int AS n, max(s.unit) AS unit FROM points p JOIN series s ON s.id = p.series_id WHERE s.metric = 'deadlock_probe'`,
      );
      assert.deepEqual(after.rows, [{ n: 2, unit: 's' }]);
    });
  },
  {},
  // The TimescaleDB flavour of the tests is PGlite, one connection: no write lanes to deadlock.
  { flavours: ['postgresql'] },
);

describeEachFlavour(
  'one failing request in a group commit',
  (ctx) => {
    it('fails alone: the other requests of its group are stored', async () => {
      // One write lane: what arrives while a slow write holds it is grouped into one transaction.
      await ctx.t.sql.query(`
        CREATE FUNCTION group_probe() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.metric = 'group_slow' THEN PERFORM pg_sleep(0.5); END IF;
            IF NEW.metric = 'group_poison' THEN RAISE EXCEPTION 'poisoned series' USING ERRCODE = '22023'; END IF;
            RETURN NEW;
          END $$;
        CREATE TRIGGER group_probe BEFORE INSERT ON series FOR EACH ROW EXECUTE FUNCTION group_probe();`);
      try {
        const post = (name: string) =>
          ctx.t.post('/api/v1/metrics', {
            source: 'group',
            metrics: [{ name, value: 1, timestamp: Date.now() - 60_000 }],
          });
        const slow = post('group_slow');
        await new Promise((r) => setTimeout(r, 150));
        const [poison, good, good2] = await Promise.all([
          post('group_poison'),
          post('group_good'),
          post('group_good2'),
        ]);
        assert.equal((await slow).status, 200);
        assert.equal(good.status, 200, good.body);
        assert.equal(good2.status, 200, good2.body);
        assert.ok(poison.status >= 400, poison.body);
        const stored = await ctx.t.sql.query(
          `SELECT s.metric FROM points p JOIN series s ON s.id = p.series_id WHERE s.source = 'group' ORDER BY 1`,
        );
        assert.deepEqual(
          stored.rows.map((r) => r.metric),
          ['group_good', 'group_good2', 'group_slow'],
        );
      } finally {
        await ctx.t.sql.query(`DROP TRIGGER group_probe ON series; DROP FUNCTION group_probe()`);
      }
    });
  },
  { DB_WRITE_CONNECTIONS: '1' },
  // The TimescaleDB flavour of the tests is PGlite, one connection as well; plpgsql triggers run on both,
  // but the grouping is shown on one.
  { flavours: ['postgresql'] },
);
