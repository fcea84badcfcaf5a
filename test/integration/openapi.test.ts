import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkExamples, curlExamples, specPath } from '../support/readme-examples.js';
import { describeEachFlavour } from '../support/suite.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

type Op = {
  security?: unknown[];
  parameters?: Array<{ in: string; name: string }>;
  requestBody?: { content: Record<string, { schema?: Record<string, unknown> }> };
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
  'x-open-query'?: string;
};
type Doc = { paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, unknown> } };

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
const ops = (doc: Doc) =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method] })),
  );

// The document does not depend on the storage flavour: one flavour is enough.
describeEachFlavour(
  'openapi',
  (ctx) => {
    let doc: Doc;
    const spec = async () => (doc ??= (await ctx.t.get('/swagger-ui/openapi.json')).json as Doc);

    it('types every JSON request body and answer, with the error envelope on every 4xx', async () => {
      const d = await spec();
      assert.ok(ops(d).length > 80, `${ops(d).length} operations`);
      for (const { path, method, op } of ops(d)) {
        const where = `${method.toUpperCase()} ${path}`;
        const json = op.requestBody?.content['application/json']?.schema;
        if (json) assert.ok(json.$ref || json.properties || json.anyOf, `${where}: a bare request body`);
        const ok = Object.entries(op.responses).filter(([c]) => /^2/.test(c));
        assert.ok(ok.length > 0, `${where}: no 2xx answer`);
        for (const [code, r] of ok) assert.ok(code === '204' || r.content, `${where} ${code}: no answer schema`);
        for (const [code, r] of Object.entries(op.responses).filter(([c]) => /^4/.test(c)))
          assert.equal(
            r.content?.['application/json']?.schema?.$ref,
            '#/components/schemas/ErrorEnvelope',
            `${where} ${code}`,
          );
        assert.ok(op.responses['400'], `${where}: 400`);
      }
      assert.ok(d.components.schemas.ErrorEnvelope && d.components.schemas.MetricsSubmission);
    });

    it('asks for the bearer key everywhere but on the public routes', async () => {
      const d = await spec();
      const open = new Set([
        '/health',
        '/health/live',
        '/health/ready',
        // /health where the reference documents put it
        '/api/v1/health',
        '/api/v1/monitoring/health',
        '/api/v2/app/{appId}/health',
      ]);
      for (const { path, method, op } of ops(d)) {
        if (open.has(path)) assert.deepEqual(op.security, [], path);
        else assert.deepEqual(op.security, [{ 'api-key': [] }], `${method} ${path}`);
      }
    });

    it('documents group_by on the query and multi-query routes, and groups in their answers', async () => {
      const d = await spec();
      const isGroupBy = (p: { name: string; in: string }) => p.name === 'group_by' && p.in === 'query';
      assert.ok(d.paths['/api/v1/metrics/query'].get.parameters?.some(isGroupBy));
      // The multi query reads it from its body (shared and per query), never from the query string.
      assert.ok(!d.paths['/api/v1/metrics/query/multi'].post.parameters?.some(isGroupBy));
      const props = (name: string) =>
        (d.components.schemas[name] as { properties: Record<string, unknown> }).properties;
      assert.ok(props('MultiQueryBody').group_by);
      assert.ok(props('MultiQueryItem').group_by);
      assert.ok(props('QueryResult').groups);
    });

    it("type-checks the README's curl examples against types generated from the document", async () => {
      const d = await spec();
      const examples = curlExamples(readFileSync(README, 'utf8'));
      assert.ok(examples.length > 60, `${examples.length} examples`);
      const r = await checkExamples(d, examples);
      assert.deepEqual(
        r.problems.map((p) => `README.md:${p.line}: ${p.message}`),
        [],
      );
      assert.ok(r.bodies >= 20, `${r.bodies} bodies checked`);
      // Every query parameter an example uses is one its route declares (or the route is open).
      for (const ex of examples) {
        const op = d.paths[specPath(d, ex.path)!][ex.method.toLowerCase()];
        if (op['x-open-query']) continue;
        const names = new Set((op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name));
        for (const [k] of ex.query)
          assert.ok(names.has(k), `README.md:${ex.line}: ${k} is not a parameter of ${ex.path}`);
      }
    });

    it('refuses an unknown query parameter with 400 INVALID_QUERY naming it', async () => {
      const r = await ctx.t.get('/api/v1/metrics/query?metric=cpu&metirc=cpu&from=now-1h');
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.code, 'INVALID_QUERY');
      assert.equal(r.json.error.details.parameter, 'metirc');
      assert.ok(r.json.error.details.allowed.includes('metric'));
      assert.match(r.json.error.message, /metirc/);
      // A route without query parameters, and the same rule on a POST before its body is read.
      const w = await ctx.t.get('/api/v1/auth/whoami?verbose=1');
      assert.equal(w.status, 400);
      assert.equal(w.json.error.details.parameter, 'verbose');
      const p = await ctx.t.post('/api/v1/metrics?precison=s', { source: 's', metrics: [{ name: 'm', value: 1 }] });
      assert.equal(p.status, 400);
      assert.equal(p.json.error.details.parameter, 'precison');
      // Trailing slash, HEAD and repeated tag filters go through.
      assert.notEqual((await ctx.t.get('/api/v1/metrics/names/?search=x')).status, 400);
      const tagged = await ctx.t.get('/api/v1/metrics/query?metric=nothing&tags=host:a&tags=host:b&group_by=host');
      assert.notEqual(tagged.json?.error?.details?.parameter, 'tags', tagged.body);
      // Without a key, the 401 comes first.
      const anon = await ctx.t.request('GET', '/api/v1/metrics/query?metirc=x', undefined, { authorization: '' });
      assert.equal(anon.status, 401);
    });

    it('leaves the protocol routes their own parameters', async () => {
      const lp = { 'content-type': 'text/plain' };
      const v1 = await ctx.t.request(
        'POST',
        '/write?db=collectd&precision=s&rp=autogen&u=any&p=secret&consistency=one',
        `cpu,host=a value=1 ${Math.floor(Date.now() / 1000)}`,
        lp,
      );
      assert.equal(v1.status, 204, v1.body);
      const v2 = await ctx.t.request(
        'POST',
        '/api/v2/write?org=any&orgID=0&bucket=telegraf&precision=s',
        `cpu,host=a value=2 ${Math.floor(Date.now() / 1000)}`,
        lp,
      );
      assert.equal(v2.status, 204, v2.body);
      assert.equal((await ctx.t.get('/prometheus-metrics?scrape=1')).status, 200);
      const d = await spec();
      const sse = new Set(d.paths['/api/v1/metrics/stream'].get.parameters!.map((p) => p.name));
      for (const name of ['metrics', 'metric', 'sources', 'tags', 'interval', 'last_event_id', 'access_token'])
        assert.ok(sse.has(name), name);
      const exp = await ctx.t.get('/api/v1/metrics/export?format=csv&metric=cpu&from=now-1h&to=now&tags=host:a');
      assert.notEqual(exp.json?.error?.code, 'INVALID_QUERY', exp.body);
      assert.equal((await ctx.t.get('/swagger-ui/openapi.json?x=1')).status, 200);
    });
  },
  {},
  { flavours: ['timescaledb'] },
);
