import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExamples, curlExamples, shellCommands } from '../support/readme-examples.js';

/** A small document: one ingest route with a typed body and answer. */
const doc = {
  openapi: '3.0.0',
  info: { title: 't', version: '1' },
  paths: {
    '/api/v1/metrics': {
      post: {
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Submission' } } },
        },
        responses: {
          '200': {
            description: 'OK',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { status: { type: 'string' }, metrics_accepted: { type: 'integer' } },
                  required: ['status', 'metrics_accepted'],
                },
              },
            },
          },
        },
      },
    },
    '/api/v1/items/{id}': { get: { responses: { '200': { description: 'OK' } } } },
  },
  components: {
    schemas: {
      Submission: {
        type: 'object',
        required: ['source', 'metrics'],
        properties: {
          source: { type: 'string' },
          metrics: {
            type: 'array',
            items: {
              type: 'object',
              required: ['name', 'value'],
              properties: { name: { type: 'string' }, value: { type: 'number' } },
            },
          },
        },
      },
    },
  },
};

const readme = (body: string, answer = '# → {"status":"success","metrics_accepted":1}') =>
  [
    '# Title',
    '',
    '```bash',
    `MS=$(( $(date +%s) * 1000 ))`,
    `curl -s localhost:8080/api/v1/metrics -H 'content-type: application/json' -d '${body}'`,
    answer,
    'curl -s localhost:8080/api/v1/items/7',
    '```',
  ].join('\n');

describe('README examples against the OpenAPI document', () => {
  it('reads curl as a shell does: quotes across lines, substitutions, continuation lines, comments', () => {
    const { commands } = shellCommands(
      `curl -s 'localhost:8080/a?x=1' -d '{"t": "'$T'",\n "n": '$MS'}' # note\ncurl -XPUT "localhost:8080/b/$(date +%s)" \\\n  -H "x: $KEY" | jq .`,
    );
    assert.deepEqual(
      commands.map((c) => c.map((w) => w.text)),
      [
        ['curl', '-s', 'localhost:8080/a?x=1', '-d', '{"t": "1705314600000",\n "n": 1705314600000}'],
        ['curl', '-XPUT', 'localhost:8080/b/2024-01-15T10:00:00Z', '-H', 'x: 1705314600000', '|'],
        ['jq', '.'],
      ],
    );
    const [a, b] = curlExamples(
      '```bash\n' +
        'curl -s localhost:8080/api/v1/metrics/ -d \'{"source": "s"}\'\n' +
        "curl -s 'localhost:8080/api/v1/metrics/query?metric=cpu&tags=host:a&tags=host:b'\n```",
    );
    assert.equal(a.method, 'POST');
    assert.equal(a.path, '/api/v1/metrics/');
    assert.deepEqual(a.json, { source: 's' });
    assert.equal(b.method, 'GET');
    assert.deepEqual(b.query, [
      ['metric', 'cpu'],
      ['tags', 'host:a'],
      ['tags', 'host:b'],
    ]);
  });

  it('passes a correct example, body and answer', async () => {
    const examples = curlExamples(readme(`{"source": "s", "metrics": [{"name": "cpu", "value": '$MS'}]}`));
    assert.equal(examples.length, 2);
    const r = await checkExamples(doc, examples);
    assert.deepEqual(r.problems, []);
    assert.equal(r.bodies, 1);
    assert.equal(r.answers, 1);
  });

  it('fails on a misspelt field, naming the README line', async () => {
    const r = await checkExamples(
      doc,
      curlExamples(readme(`{"source": "s", "metircs": [{"name": "cpu", "value": 1}]}`)),
    );
    assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
    assert.equal(r.problems[0].line, 5);
    assert.match(r.problems[0].message, /metircs/);
  });

  it('fails on a misspelt nested field, a wrong type and a wrong answer', async () => {
    const nested = await checkExamples(
      doc,
      curlExamples(readme(`{"source": "s", "metrics": [{"nmae": "cpu", "value": 1}]}`)),
    );
    assert.ok(
      nested.problems.some((p) => /nmae/.test(p.message)),
      JSON.stringify(nested.problems),
    );
    const typed = await checkExamples(
      doc,
      curlExamples(readme(`{"source": "s", "metrics": [{"name": "cpu", "value": "1"}]}`)),
    );
    assert.equal(typed.problems.length, 1);
    const answer = await checkExamples(
      doc,
      curlExamples(readme(`{"source": "s", "metrics": []}`, '# → {"status":"success","metrics_acepted":1}')),
    );
    assert.ok(
      answer.problems.some((p) => /metrics_acepted/.test(p.message)),
      JSON.stringify(answer.problems),
    );
  });

  it('fails on a path or method the document does not have', async () => {
    const r = await checkExamples(
      doc,
      curlExamples(
        '```bash\ncurl -s localhost:8080/api/v1/metric\ncurl -s -XDELETE localhost:8080/api/v1/items/3\n```',
      ),
    );
    assert.deepEqual(
      r.problems.map((p) => p.message),
      [
        'GET /api/v1/metric: no such path in the OpenAPI document',
        'DELETE /api/v1/items/{id}: the path has no delete operation',
      ],
    );
  });
});
