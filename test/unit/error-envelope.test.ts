import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toApiError } from '../../src/common/error-envelope.js';

/** How errors from PostgreSQL and fastify become the reference's envelope. */
describe('toApiError', () => {
  it('answers a float8 overflow in an aggregate with 422 saying what to ask instead, not a 500', () => {
    const e = toApiError(Object.assign(new Error('value out of range: overflow'), { code: '22003' }));
    assert.equal(e.getStatus(), 422);
    assert.equal(e.code, 'UNPROCESSABLE_ENTITY');
    assert.match(e.message, /too large to aggregate.*min, max, first or last/);
  });

  it("names secure-json-parse's refusal of a __proto__ key for what it is, not malformed JSON", () => {
    const e = toApiError(
      Object.assign(new SyntaxError('Object contains forbidden prototype property'), { statusCode: 400 }),
    );
    assert.equal(e.getStatus(), 400);
    assert.match(
      e.message,
      /^Request body holds a __proto__ key: Timescope refuses __proto__ and constructor\.prototype keys/,
    );
    const malformed = toApiError(Object.assign(new SyntaxError('Unexpected end of JSON input'), { statusCode: 400 }));
    assert.equal(malformed.message, 'Malformed JSON body: Unexpected end of JSON input');
  });

  it('keeps a statement timeout a 504 and an unreachable database a 503 with Retry-After', () => {
    assert.equal(toApiError(Object.assign(new Error('canceling statement'), { code: '57014' })).getStatus(), 504);
    const down = toApiError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    assert.equal(down.getStatus(), 503);
    assert.equal(down.retryAfter, 5);
    assert.equal(toApiError(new Error('anything else')).getStatus(), 500);
  });
});
