import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseMessage, SseParser } from '../../clients/typescript/src/index.js';

/** What the service sends (sse.service.ts): a retry and a comment first, ids, named events, keep-alives. */
const STREAM =
  'retry: 3000\n: connected to Timescope (every point)\n\n' +
  'id: 3f9a01c2.1\ndata: {"metric":"cpu","value":1}\n\n' +
  ': ping\n\n' +
  'id: 3f9a01c2.2\ndata: {"metric":"cpu","value":2,"tags":{"h":"é→😀"}}\n\n' +
  'event: gap\ndata: {"reason":"the server restarted since"}\n\n' +
  'event: skipped\ndata: {"count":3}\n\n';

const EXPECTED: SseMessage[] = [
  { event: 'message', data: '{"metric":"cpu","value":1}', id: '3f9a01c2.1' },
  { event: 'message', data: '{"metric":"cpu","value":2,"tags":{"h":"é→😀"}}', id: '3f9a01c2.2' },
  { event: 'gap', data: '{"reason":"the server restarted since"}', id: '3f9a01c2.2' },
  { event: 'skipped', data: '{"count":3}', id: '3f9a01c2.2' },
];

describe('SseParser', () => {
  it('gives the same events wherever the stream is cut into chunks', () => {
    for (let a = 0; a <= STREAM.length; a++) {
      for (const b of [a, Math.min(STREAM.length, a + 1), Math.min(STREAM.length, a + 7)]) {
        const p = new SseParser();
        const got = [...p.push(STREAM.slice(0, a)), ...p.push(STREAM.slice(a, b)), ...p.push(STREAM.slice(b))];
        assert.deepEqual(got, EXPECTED, `cut at ${a} and ${b}`);
        assert.equal(p.retryMs, 3000);
        assert.equal(p.lastEventId, '3f9a01c2.2');
      }
    }
  });

  it('reads CRLF and lone CR line ends (also a CRLF split across chunks), multi-line data and a BOM', () => {
    const text = '\ufeffid: 7\r\ndata: a\r\ndata: b\r\rdata:c\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      assert.deepEqual(
        got,
        [
          { event: 'message', data: 'a\nb', id: '7' },
          { event: 'message', data: 'c', id: '7' },
        ],
        `cut at ${cut}`,
      );
    }
  });

  it('keeps the last id across events without one, and forgets an event (and its id) cut short by a drop', () => {
    const p = new SseParser('start.0');
    assert.deepEqual(p.push('data: x\n\n'), [{ event: 'message', data: 'x', id: 'start.0' }]);
    assert.deepEqual(p.push('id: 9\n\n'), []); // an id without data: no event, but it is the new last id
    assert.equal(p.lastEventId, '9');
    assert.deepEqual(p.push('id: 10\ndata: half'), []);
    assert.equal(p.lastEventId, '9'); // event 10 is not complete: a reconnect must not skip it
    p.reset(); // the connection dropped mid-event
    assert.deepEqual(p.push('data: y\n\n'), [{ event: 'message', data: 'y', id: '9' }]);
    assert.deepEqual(p.push('retry: soon\nretry: 250\nfoo: bar\ndata\n\n'), [{ event: 'message', data: '', id: '9' }]);
    assert.equal(p.retryMs, 250);
  });
});
