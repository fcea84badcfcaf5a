import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { assess, probeReader, READ_SCHEMA } from '../../src/reader/reader-access.js';
import { expectedBuckets, ingest, KnownPoint } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';

/**
 * Grafana's PostgreSQL datasource sends SQL with its macros expanded by its backend
 * (notes/ecosystem.md §1.2). These are the expansions of the README's queries and of every query
 * of the provisioned dashboard, run as Grafana would: as the reader role the README makes (its SQL
 * is read from the README and run as written), whose search_path is the timescope_read schema of
 * views. On PostgreSQL the reader logs in; on PGlite (one user, one session) the same role is
 * taken with SET LOCAL ROLE. The role's limits (no table outside the views, the statement
 * watchdog) are checked too, the watchdog on PostgreSQL only (PGlite has no second session).
 */
const ROOT = new URL('../../../', import.meta.url);
const READER = `grafana_reader_${randomBytes(4).toString('hex')}`;
const LIMITED = `${READER}_limited`;
const PASSWORD = randomBytes(12).toString('hex');
const SECRET = `whsec_${randomBytes(12).toString('hex')}`;
const WATCHDOG_LIMIT_S = 1;

/** The README's "A read-only role for an existing database" block, for this test's database and roles. */
function readmeRoleSql(database: string, owner: string): string {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  const at = readme.indexOf('**A read-only role for an existing database**');
  assert.ok(at > 0, 'README has the read-only role section');
  const block = /```sql\n([\s\S]*?)```/.exec(readme.slice(at))![1];
  return block
    .replace("PASSWORD '…'", `PASSWORD '${PASSWORD}'`)
    .replace(/\bgrafana_reader\b/g, pg.escapeIdentifier(READER))
    .replace(/DATABASE timescope\b/g, `DATABASE ${pg.escapeIdentifier(database)}`)
    .replace(/\btimescope\b/g, pg.escapeIdentifier(owner));
}

/** Grafana's backend expansion of the macros and variables these queries use (ecosystem.md §1.2, §1.4). */
function expand(
  sql: string,
  o: { from: string; to: string; interval: string; timescaledb: boolean; vars: Record<string, string[]> },
): string {
  const seconds = (iv: string) => {
    const m = /^'?(\d+)(s|m|h|d)'?$/.exec(iv.trim())!;
    return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's']!;
  };
  return sql
    .replace(/\$__interval\b/g, o.interval)
    .replace(/\$__timeGroupAlias\(([^,)]+),([^)]+)\)/g, (_, col: string, iv: string) =>
      o.timescaledb
        ? `time_bucket('${seconds(iv).toFixed(3)}s',${col.trim()}) AS "time"`
        : `floor(extract(epoch from ${col.trim()})/${seconds(iv)})*${seconds(iv)} AS "time"`,
    )
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_, col: string) => `${col.trim()} BETWEEN '${o.from}' AND '${o.to}'`)
    .replace(/'\$(\w+)'/g, (_, v: string) => `'${o.vars[v][0].replace(/'/g, "''")}'`)
    .replace(/\(\$(\w+)\)/g, (_, v: string) => `(${o.vars[v].map((x) => `'${x.replace(/'/g, "''")}'`).join(',')})`);
}

const code = (err: unknown) => (err as { code?: string }).code;

describeEachFlavour(
  'Grafana SQL',
  (ctx) => {
    const H0 = Math.floor((Date.now() - 3 * 3_600_000) / 3_600_000) * 3_600_000;
    const points: KnownPoint[] = [];
    for (let t = H0; t < H0 + 2 * 3_600_000; t += 10_000) {
      points.push({ metric: 'cpu_usage', source: 'a', tags: { host: 'h1' }, t, v: (t / 10_000) % 50 });
      points.push({ metric: 'cpu_usage', source: 'b', tags: { host: 'h2' }, t, v: 100 - ((t / 10_000) % 30) });
    }
    const from = new Date(H0).toISOString().replace('.000', ''),
      to = new Date(H0 + 2 * 3_600_000 - 1).toISOString();
    let database = '';
    const ident = pg.escapeIdentifier(READER);

    /** A session of the reader as Grafana opens it (PostgreSQL: a login with the role's settings). */
    const connectReader = async (): Promise<pg.Client> => {
      const url = new URL(ctx.t.database.url);
      url.username = READER;
      url.password = PASSWORD;
      const c = new pg.Client({ connectionString: url.toString() });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    };
    /** One query as the reader. */
    const asReader = async (sql: string): Promise<pg.QueryResult> => {
      if (ctx.flavour === 'postgresql') {
        const c = await connectReader();
        try {
          return await c.query(sql);
        } finally {
          await c.end();
        }
      }
      const c = await ctx.t.sql.connect();
      try {
        await c.query('BEGIN');
        // SET ROLE does not apply the role's settings: its search_path is set here as ALTER ROLE made it.
        await c.query(`SET LOCAL ROLE ${ident}; SET LOCAL search_path = ${READ_SCHEMA}`);
        return await c.query(sql);
      } finally {
        await c.query('ROLLBACK').catch(() => undefined);
        c.release();
      }
    };
    /** A partition of points (PostgreSQL) or a chunk of it (TimescaleDB), schema-qualified. */
    const aPartition = async (): Promise<string> => {
      const r = await ctx.t.sql.query(
        ctx.flavour === 'postgresql'
          ? `SELECT format('%I.%I', n.nspname, c.relname) AS rel FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = 'points'::regclass LIMIT 1`
          : `SELECT format('%I.%I', n.nspname, c.relname) AS rel FROM show_chunks('points') x JOIN pg_class c ON c.oid = x JOIN pg_namespace n ON n.oid = c.relnamespace LIMIT 1`,
      );
      assert.ok(r.rows[0]?.rel);
      return r.rows[0].rel;
    };
    const refused = async (sql: string, codes = ['42501']) => {
      await assert.rejects(asReader(sql), (err) => {
        assert.ok(codes.includes(code(err)!), `${sql}: ${code(err)} ${(err as Error).message}`);
        return true;
      });
    };

    before(async () => {
      await ingest(ctx.t, points);
      await ctx.t.runJob('rollup-refresh');
      const r = await ctx.t.post('/api/v1/monitoring/alerts/configure', {
        name: 'grafana_secret_probe',
        type: 'threshold',
        metric: 'cpu_usage',
        condition: 'greater_than',
        threshold: 1000,
        notify: { webhook: 'https://93.184.216.34/hook', secret: SECRET },
      });
      assert.equal(r.status, 201, r.body);
      const who = (await ctx.t.sql.query(`SELECT current_database() AS db, current_user AS me`)).rows[0];
      database = who.db;
      // PGlite's one database is template1, and updating its pg_database row (GRANT CONNECT) breaks
      // PGlite ("tuple concurrently deleted"); it checks no CONNECT privilege, so the grant goes to a
      // database made for it (the PGlite template has no other: every PGlite start would load it).
      let grantOn = who.db;
      if (ctx.flavour !== 'postgresql') {
        grantOn = 'grafana_grant_target';
        await ctx.t.sql.query(`CREATE DATABASE ${grantOn}`);
      }
      await ctx.t.sql.query(readmeRoleSql(grantOn, who.me));
      const run = await ctx.t.runJob('reader-watchdog');
      assert.equal(run.details.status, 'enforcing', JSON.stringify(run.details));
      // The README's SQL leaves nothing to report but that the test runs with JOBS_ENABLED=false.
      const health = (await ctx.t.get('/health')).json.components.grafana_reader;
      assert.deepEqual(
        [health.problems, health.warnings.length, health.watchdog.can_cancel],
        [[], 1, true],
        JSON.stringify(health),
      );
      assert.match(health.warnings[0], /JOBS_ENABLED=false/);
    });
    after(async () => {
      if (ctx.flavour !== 'postgresql') return; // PGlite's roles go with it
      // Roles belong to the cluster: drop what the reader holds in the test database (if still there:
      // the suite's own after hook may already have closed the app and dropped it), then the role.
      await ctx.t?.sql.query(`DROP OWNED BY ${ident}`).catch(() => undefined);
      const admin = new pg.Client({ connectionString: process.env.TIMESCOPE_TEST_ADMIN_URL });
      await admin.connect();
      try {
        for (const role of [READER, LIMITED])
          await admin
            .query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`)
            .catch((err) => console.error(`# ${role}: ${err.message}`));
      } finally {
        await admin.end();
      }
    });

    it('answers $__timeGroupAlias(time, $__interval) / $__timeFilter(time) over the metrics view, TimescaleDB toggle off and on', async () => {
      const want = expectedBuckets(points, H0, H0 + 2 * 3_600_000, 300_000, 'avg');
      const sql = `SELECT $__timeGroupAlias(time, $__interval), avg(value) FROM metrics WHERE $__timeFilter(time) AND metric = 'cpu_usage' GROUP BY 1 ORDER BY 1`;
      for (const timescaledb of [false, true]) {
        const r = await asReader(expand(sql, { from, to, interval: '5m', timescaledb, vars: {} }));
        assert.equal(r.rows.length, want.length);
        r.rows.forEach((row, i) => {
          const t = row.time instanceof Date ? row.time.getTime() : Number(row.time) * 1000;
          assert.equal(t, want[i].t);
          assert.ok(Math.abs(row.avg - want[i].v) < 1e-9);
        });
      }
    });

    it('gives one series per source with a string "metric" column, and reads the rollup views', async () => {
      const r = await asReader(
        `SELECT floor(extract(epoch from time)/3600)*3600 AS "time", source AS metric, max(value) AS value
         FROM metrics WHERE time BETWEEN '${from}' AND '${to}' AND metric = 'cpu_usage' GROUP BY 1, 2 ORDER BY 1`,
      );
      assert.equal(r.rows.length, 4);
      for (const tier of ['1m', '5m', '1h']) {
        const rollup = await asReader(
          `SELECT floor(extract(epoch from time)/3600)*3600 AS "time", source AS metric, max(max) AS value
           FROM metrics_${tier} WHERE time BETWEEN '${from}' AND '${to}' AND metric = 'cpu_usage' GROUP BY 1, 2 ORDER BY 1, 2`,
        );
        assert.deepEqual(
          rollup.rows.map((x) => [x.metric, x.value]),
          [...r.rows]
            .sort((x, y) => x.time - y.time || x.metric.localeCompare(y.metric))
            .map((x) => [x.metric, x.value]),
          tier,
        );
      }
      const day = await asReader(`SELECT sum(count)::int AS n FROM metrics_1d WHERE metric = 'cpu_usage'`);
      assert.equal(day.rows[0].n, points.length);
      const raw = await asReader(
        `SELECT count(*)::int AS n FROM points p JOIN series s ON s.id = p.series_id WHERE s.metric = 'cpu_usage'`,
      );
      assert.equal(raw.rows[0].n, points.length);
      if (ctx.flavour === 'timescaledb') {
        // Compressed chunks read through the views too (the rest of the suite reads them compressed).
        await ctx.t.sql.query(`SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('points') c`);
        assert.equal(
          (await asReader(`SELECT count(*)::int AS n FROM metrics WHERE metric = 'cpu_usage'`)).rows[0].n,
          points.length,
        );
        assert.equal(
          (await asReader(`SELECT sum(count)::int AS n FROM metrics_1m WHERE metric = 'cpu_usage'`)).rows[0].n,
          points.length,
        );
      }
    });

    it('serves the dashboard annotation query from events', async () => {
      const r = await ctx.t.post('/api/v1/events', {
        kind: 'alert',
        source: 'a',
        level: 'warn',
        message: 'cpu_usage above 90',
      });
      assert.equal(r.status, 201, r.body);
      const since = new Date(Date.now() - 60_000).toISOString(),
        until = new Date(Date.now() + 60_000).toISOString();
      const a = await asReader(
        `SELECT time, message AS text, kind || ',' || level AS tags FROM events WHERE time BETWEEN '${since}' AND '${until}' AND kind IN ('alert', 'service_status') ORDER BY time`,
      );
      assert.deepEqual(
        a.rows.map((x) => [x.text, x.tags]),
        [['cpu_usage above 90', 'alert,warn']],
      );
    });

    it('serves variable queries', async () => {
      assert.deepEqual((await asReader(`SELECT DISTINCT metric FROM series ORDER BY 1`)).rows, [
        { metric: 'cpu_usage' },
      ]);
      const sources = await asReader(
        `SELECT DISTINCT source FROM series WHERE metric = 'cpu_usage' AND source IN ('a','b') ORDER BY 1`,
      );
      assert.deepEqual(
        sources.rows.map((x) => x.source),
        ['a', 'b'],
      );
      const hosts = await asReader(
        `SELECT DISTINCT tags->>'host' AS __value FROM series WHERE metric = 'cpu_usage' ORDER BY 1`,
      );
      assert.deepEqual(
        hosts.rows.map((x) => x.__value),
        ['h1', 'h2'],
      );
    });

    it("runs every query of the provisioned dashboard (grafana/dashboards) as the reader, as its datasource's TimescaleDB toggle expands them", async () => {
      const datasource = readFileSync(new URL('grafana/provisioning/datasources/timescope.yaml', ROOT), 'utf8');
      const timescaledb = /^\s*timescaledb:\s*true\b/m.test(datasource);
      const dashboard = JSON.parse(readFileSync(new URL('grafana/dashboards/timescope-overview.json', ROOT), 'utf8'));
      const queries: Array<[string, string]> = [
        ...dashboard.templating.list.map((v: { name: string; query: string | { query: string } }) => [
          `variable ${v.name}`,
          typeof v.query === 'string' ? v.query : v.query.query,
        ]),
        ...dashboard.annotations.list
          .filter((a: { rawQuery?: string; target?: { rawSql?: string } }) => a.rawQuery ?? a.target?.rawSql)
          .map((a: { name: string; rawQuery?: string; target?: { rawSql?: string } }) => [
            `annotation ${a.name}`,
            a.rawQuery ?? a.target!.rawSql!,
          ]),
        ...dashboard.panels.flatMap((p: { title: string; targets?: Array<{ rawSql: string }> }) =>
          (p.targets ?? []).map((t) => [`panel ${p.title}`, t.rawSql]),
        ),
      ];
      assert.ok(queries.length >= 6, `${queries.length} queries`);
      const since = new Date(H0).toISOString(),
        until = new Date(Date.now() + 60_000).toISOString();
      for (const [what, sql] of queries) {
        const r = await asReader(
          expand(sql, {
            from: since,
            to: until,
            interval: '1m',
            timescaledb,
            vars: { metric: ['cpu_usage'], source: ['a', 'b'] },
          }),
        ).catch((err) => {
          throw new Error(`${what}: ${(err as Error).message}\n${sql}`);
        });
        assert.ok(r.rows.length > 0, `${what} returned rows`);
      }
    });

    it('reads nothing outside timescope_read: no table, partition or chunk of public, no webhook secret, no way to create', async () => {
      const one = await aPartition();
      for (const rel of [
        'public.alert_rules',
        'public.settings_history',
        'public.webhook_deliveries',
        'public.pipelines',
        'public.points',
        'public.series',
        'public.events',
        'public.metrics',
        'public.rollup_1h',
        one,
      ])
        await refused(`SELECT * FROM ${rel} LIMIT 1`);
      await refused(`SELECT * FROM alert_rules`, ['42P01']); // not on its search_path
      await refused(`CREATE VIEW ${READ_SCHEMA}.mine AS SELECT 1`);
      await refused(`CREATE TABLE public.mine (x int)`);
      const privileges = await asReader(
        `SELECT has_schema_privilege('public', 'USAGE') AS public_usage, has_schema_privilege('${READ_SCHEMA}', 'CREATE') AS create_here, current_setting('search_path') AS path`,
      );
      assert.deepEqual(privileges.rows[0], { public_usage: false, create_here: false, path: READ_SCHEMA });
      // The secret is stored (Timescope signs with it) but no row the reader can read holds it.
      const stored = await ctx.t.sql.query(`SELECT count(*)::int AS n FROM alert_rules WHERE webhook_secret = $1`, [
        SECRET,
      ]);
      assert.equal(stored.rows[0].n, 1);
      const views = await asReader(
        `SELECT table_name AS v FROM information_schema.views WHERE table_schema = '${READ_SCHEMA}' ORDER BY 1`,
      );
      assert.deepEqual(
        views.rows.map((x) => x.v),
        ['events', 'metrics', 'metrics_1d', 'metrics_1h', 'metrics_1m', 'metrics_5m', 'points', 'series'],
      );
      for (const { v } of views.rows)
        assert.equal(
          (await asReader(`SELECT count(*)::int AS n FROM ${v} t WHERE t::text LIKE '%${SECRET}%'`)).rows[0].n,
          0,
          v,
        );
    });

    it('takes back what the earlier setup granted the reader on public (tables, partitions, chunks, default privileges)', async () => {
      await ctx.t.sql.query(
        `GRANT USAGE ON SCHEMA public TO ${ident}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${ident};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${ident}`,
      );
      assert.equal(
        (await asReader(`SELECT count(*)::int AS n FROM public.alert_rules WHERE webhook_secret = '${SECRET}'`)).rows[0]
          .n,
        1,
        'the old setup exposed the secret',
      );
      const run = await ctx.t.runJob('reader-watchdog');
      assert.equal(run.details.status, 'enforcing', JSON.stringify(run.details));
      for (const rel of ['public.alert_rules', 'public.settings_history', 'public.points', await aPartition()])
        await refused(`SELECT * FROM ${rel} LIMIT 1`);
      await ctx.t.sql.query(`CREATE TABLE public.made_later (x int)`);
      try {
        await refused(`SELECT * FROM public.made_later`);
      } finally {
        await ctx.t.sql.query(`DROP TABLE public.made_later`);
      }
      const health = await ctx.t.get('/health');
      assert.equal(health.json.components.grafana_reader.status, 'enforcing');
      assert.deepEqual(health.json.components.grafana_reader.problems, []);
    });

    if (ctx.flavour === 'postgresql') {
      it('cancels a statement of the reader past READER_STATEMENT_TIMEOUT_SECONDS even after SET statement_timeout = 0, and ends its idle transactions', async () => {
        const c = await connectReader();
        try {
          const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
          const t0 = Date.now();
          const sleeping = c.query('SET statement_timeout = 0; SELECT pg_sleep(30)').then(
            () => undefined,
            (err: Error) => err,
          );
          let cancelledBy: any;
          while (!cancelledBy && Date.now() - t0 < 10_000) {
            await delay(250);
            const run = await ctx.t.runJob('reader-watchdog');
            cancelledBy = run.details.cancelled.find((x: { pid: number }) => x.pid === pid);
          }
          const err = await sleeping;
          const took = Date.now() - t0;
          assert.equal(code(err), '57014', String(err)); // query_canceled
          assert.ok(took < WATCHDOG_LIMIT_S * 1000 + 3_000, `cancelled after ${took} ms`);
          assert.match(cancelledBy.query, /pg_sleep\(30\)/);
          assert.equal((await c.query('SELECT 1 AS ok')).rows[0].ok, 1, 'the session itself lives on');
        } finally {
          await c.end();
        }
        const idle = await connectReader();
        const pid = (await idle.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        await idle.query('BEGIN; SELECT count(*) FROM points');
        await delay(WATCHDOG_LIMIT_S * 1000 + 300);
        const run = await ctx.t.runJob('reader-watchdog');
        assert.ok(
          run.details.terminated.some(
            (x: { pid: number; state: string }) => x.pid === pid && x.state === 'idle in transaction',
          ),
          JSON.stringify(run.details),
        );
        await assert.rejects(idle.query('SELECT 1'));
        await idle.end().catch(() => undefined);
        const health = (await ctx.t.get('/health')).json.components.grafana_reader;
        assert.equal(health.watchdog.can_cancel, true);
        assert.ok(health.watchdog.cancelled >= 1 && health.watchdog.terminated >= 1, JSON.stringify(health));
      });

      it('says so in /health when the reader can read something Timescope cannot take back (a grant to PUBLIC)', async () => {
        await ctx.t.sql.query(`GRANT SELECT ON public.settings_history TO PUBLIC`);
        try {
          await ctx.t.runJob('reader-watchdog');
          const health = (await ctx.t.get('/health')).json;
          assert.equal(health.status, 'degraded');
          assert.match(health.components.grafana_reader.problems.join('\n'), /can read public\.settings_history/);
        } finally {
          await ctx.t.sql.query(`REVOKE SELECT ON public.settings_history FROM PUBLIC`);
        }
        await ctx.t.runJob('reader-watchdog');
        assert.deepEqual((await ctx.t.get('/health')).json.components.grafana_reader.problems, []);
      });

      it("knows when Timescope's role may not see or cancel the reader's statements, and names the GRANT that fixes it", async () => {
        await ctx.t.sql.query(
          `CREATE ROLE ${pg.escapeIdentifier(LIMITED)} LOGIN PASSWORD '${PASSWORD}'; GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(database)} TO ${pg.escapeIdentifier(LIMITED)}`,
        );
        const url = new URL(ctx.t.database.url);
        url.username = LIMITED;
        url.password = PASSWORD;
        const c = new pg.Client({ connectionString: url.toString() });
        await c.connect();
        try {
          let p = (await probeReader(c, READER))!;
          assert.deepEqual([p.canSeeQueries, p.canSignal], [false, false]);
          assert.match(
            assess(p, 30).problems.join('\n'),
            new RegExp(`not enforced.*GRANT ${ident} TO ${pg.escapeIdentifier(LIMITED)}`),
          );
          assert.deepEqual(assess(p, 0).problems, [], 'no limit, nothing to enforce');
          await ctx.t.sql.query(`GRANT ${ident} TO ${pg.escapeIdentifier(LIMITED)}`);
          p = (await probeReader(c, READER))!;
          assert.deepEqual([p.canSeeQueries, p.canSignal], [true, true]);
          assert.deepEqual(assess(p, 30).problems, []);
        } finally {
          await c.end();
          await ctx.t.sql.query(
            `DROP OWNED BY ${pg.escapeIdentifier(LIMITED)}; DROP ROLE ${pg.escapeIdentifier(LIMITED)}`,
          );
        }
      });
    }
  },
  { GRAFANA_READER_ROLE: READER, READER_STATEMENT_TIMEOUT_SECONDS: String(WATCHDOG_LIMIT_S) },
);
