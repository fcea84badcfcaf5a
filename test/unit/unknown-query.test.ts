import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OpenAPIObject } from '@nestjs/swagger';
import { ApiError } from '../../src/common/errors.js';
import { openApiPath, QueryParameterRule } from '../../src/openapi/unknown-query.js';

const doc = {
  openapi: '3.0.0',
  info: { title: 't', version: '1' },
  paths: {
    '/api/v1/metrics/query': {
      get: {
        parameters: [
          { in: 'query', name: 'metric' },
          { in: 'query', name: 'tags' },
        ],
        responses: {},
      },
    },
    '/api/v1/pipelines/{id}/run': { post: { parameters: [{ in: 'path', name: 'id' }], responses: {} } },
    '/prometheus-metrics': { get: { 'x-open-query': 'scrape params', responses: {} } },
  },
} as unknown as OpenAPIObject;

describe('unknown query parameters', () => {
  const rule = new QueryParameterRule(doc);

  it('maps fastify route urls to the document paths', () => {
    assert.equal(openApiPath('/api/v1/pipelines/:id(^\\d+$)/run'), '/api/v1/pipelines/{id}/run');
    assert.equal(openApiPath('/api/v2/app/:appId/metrics'), '/api/v2/app/{appId}/metrics');
    assert.equal(openApiPath('/api/v1/metrics/'), '/api/v1/metrics');
    assert.equal(openApiPath('/'), '/');
  });

  it('lets declared parameters through, repeated or not, also on HEAD', () => {
    rule.check('GET', '/api/v1/metrics/query', { metric: 'cpu', tags: ['host:a', 'host:b'] });
    rule.check('HEAD', '/api/v1/metrics/query', { metric: 'cpu' });
  });

  it('refuses the first undeclared one with INVALID_QUERY naming it', () => {
    assert.throws(
      () => rule.check('GET', '/api/v1/metrics/query', { metric: 'cpu', 'tags[host]': 'a' }),
      (e: ApiError) => {
        const b = e.body();
        assert.equal(e.getStatus(), 400);
        assert.equal(b.code, 'INVALID_QUERY');
        assert.equal(b.details?.parameter, 'tags[host]');
        assert.deepEqual(b.details?.allowed, ['metric', 'tags']);
        return true;
      },
    );
    assert.throws(
      () => rule.check('POST', '/api/v1/pipelines/:id(^\\d+$)/run', { form: '1' }),
      /takes no query parameters/,
    );
  });

  it('does not check open routes, routes outside the document, wildcards and the page at /', () => {
    rule.check('GET', '/prometheus-metrics', { anything: '1' });
    rule.check('GET', '/swagger-ui/openapi.json', { x: '1' });
    rule.check('GET', '/ui/*', { v: '123' });
    rule.check('GET', '/', { utm_source: 'x' });
    assert.equal(rule.allowed('GET', '/nowhere'), undefined);
  });
});
