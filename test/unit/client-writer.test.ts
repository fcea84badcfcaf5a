import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeBatch, PointWriter, TimescopeValidationError } from '../../clients/typescript/src/index.js';

const ok = (n: number) => ({ status: 'success' as const, metrics_accepted: n, timestamp: '', batch_id: 'b' });

/** A sender that records bodies and answers when the test says so (or at once). */
function recorder(auto = true) {
  const bodies: any[] = [];
  const raw: string[] = [];
  const held: Array<() => void> = [];
  const send = (body: string, n: number) => {
    raw.push(body);
    bodies.push(JSON.parse(body));
    return auto ? Promise.resolve(ok(n)) : new Promise<ReturnType<typeof ok>>((r) => held.push(() => r(ok(n))));
  };
  const points = (b: any) => b.batches.flatMap((x: any) => x.metrics.map((m: any) => ({ source: x.source, ...m })));
  return { send, bodies, raw, held, points };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('PointWriter batching', () => {
  it('cuts batches at batchSize, keeps the order, and stamps points at write time', async () => {
    const r = recorder();
    let now = 1_700_000_000_000;
    const w = new PointWriter(r.send, { source: 'app', batchSize: 5_000, flushIntervalMs: 60_000 }, () => now);
    for (let i = 0; i < 12_000; i++) {
      if (i % 1000 === 0) now += 1;
      await w.write({ name: 'm', value: i });
    }
    await tick();
    assert.deepEqual(
      r.bodies.map((b) => r.points(b).length),
      [5_000, 5_000],
    ); // the rest waits for its size or its timer
    await w.flush();
    const all = r.bodies.flatMap(r.points);
    assert.deepEqual(
      r.bodies.map((b) => r.points(b).length),
      [5_000, 5_000, 2_000],
    );
    assert.deepEqual(
      all.map((p: any) => p.value),
      Array.from({ length: 12_000 }, (_, i) => i),
    );
    assert.equal(all[0].timestamp, 1_700_000_000_001);
    assert.equal(all[11_999].timestamp, 1_700_000_000_012);
    assert.equal(all[0].source, 'app');
  });

  it('cuts batches at maxBatchBytes of JSON, each body within it', async () => {
    const r = recorder();
    const w = new PointWriter(r.send, { source: 's', maxBatchBytes: 2_000, flushIntervalMs: 60_000 });
    const tags = { host: 'h'.repeat(50), region: 'é'.repeat(20) }; // 2-byte characters count twice
    for (let i = 0; i < 200; i++) await w.write({ name: 'cpu', value: i, tags, timestamp: 1_700_000_000_000 + i });
    await w.flush();
    assert.ok(r.raw.length > 10, `${r.raw.length} batches`);
    for (const body of r.raw) assert.ok(Buffer.byteLength(body) <= 2_000, `${Buffer.byteLength(body)} bytes`);
    // Full batches: within a point of the limit.
    for (const body of r.raw.slice(0, -1)) assert.ok(Buffer.byteLength(body) > 2_000 - 200);
    assert.equal(r.bodies.flatMap(r.points).length, 200);
  });

  it('sends a partial batch flushIntervalMs after its first point', async () => {
    const r = recorder();
    const w = new PointWriter(r.send, { source: 's', flushIntervalMs: 50 });
    await w.write({ name: 'a', value: 1 });
    await w.write({ name: 'a', value: 2, timestamp: 5 });
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(r.bodies.length, 0);
    await new Promise((res) => setTimeout(res, 80));
    assert.equal(r.bodies.length, 1);
    assert.equal(r.points(r.bodies[0]).length, 2);
    await w.close();
  });

  it('makes write() wait while more than maxBufferedPoints are buffered or in flight', async () => {
    const r = recorder(false);
    const w = new PointWriter(r.send, { source: 's', batchSize: 10, maxBufferedPoints: 25, flushIntervalMs: 60_000 });
    const pts = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ name: 'm', value: from + i }));
    let released = false;
    await w.write(pts(20, 0)); // 20 <= 25: at once
    const blocked = w.write(pts(10, 20)).then(() => (released = true)); // 30 > 25: waits
    await tick();
    assert.equal(released, false);
    assert.equal(w.pending, 30);
    assert.equal(r.held.length, 1); // concurrency 1: one request in flight, the others queued
    r.held.shift()!(); // 10 answered: 20 left
    await tick();
    assert.equal(released, true);
    await blocked;
    const done = w.flush();
    while (r.held.length || w.pending) {
      r.held.shift()?.();
      await tick();
    }
    await done;
    assert.equal(w.stats.written, 30);
  });

  it('groups the points of one batch by source, each point as the service reads it', () => {
    const body = JSON.parse(
      encodeBatch(
        [
          { name: 'cpu', value: 1, source: 'a', unit: 'percent', tags: { host: 'x' }, timestamp: new Date(1_000) },
          { name: 'cpu', value: 2, source: 'b', timestamp: '2026-01-01T00:00:00.123456Z' },
          { name: 'mem', value: 3, timestamp: 7 },
        ],
        'a',
      ),
    );
    assert.deepEqual(body, {
      batches: [
        {
          source: 'a',
          metrics: [
            { name: 'cpu', value: 1, timestamp: 1_000, unit: 'percent', tags: { host: 'x' } },
            { name: 'mem', value: 3, timestamp: 7 },
          ],
        },
        { source: 'b', metrics: [{ name: 'cpu', value: 2, timestamp: '2026-01-01T00:00:00.123456Z' }] },
      ],
    });
  });

  it('refuses a bad point before buffering anything of the call, naming the field', async () => {
    const r = recorder();
    const w = new PointWriter(r.send, {});
    for (const [p, field] of [
      [{ name: 'm', value: NaN, source: 's' }, 'value'],
      [{ name: 'm', value: '1' as unknown as number, source: 's' }, 'value'],
      [{ name: '', value: 1, source: 's' }, 'name'],
      [{ name: 'm', value: 1 }, 'source'],
      [{ name: 'm', value: 1, source: 's', tags: { a: 1 as unknown as string } }, 'tags'],
      [{ name: 'm', value: 1, source: 's', timestamp: new Date('nope') }, 'timestamp'],
    ] as const) {
      const err = await w.write([{ name: 'ok', value: 1, source: 's' }, p]).catch((e: unknown) => e);
      assert.ok(err instanceof TimescopeValidationError, JSON.stringify(p));
      assert.equal(err.field, field);
      assert.match(err.message, /^\[1\]\./);
    }
    assert.equal(w.pending, 0);
    await w.close();
    assert.equal(r.bodies.length, 0);
    await assert.rejects(w.write({ name: 'm', value: 1, source: 's' }), /closed/);
  });
});
