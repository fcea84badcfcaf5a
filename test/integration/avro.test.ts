import assert from 'node:assert/strict';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';
import avro from 'avsc';
import { parseExposition, sampleValue } from '../support/prom-text.js';
import { describeEachFlavour } from '../support/suite.js';

/** The reference's schema (metrics-collection-api-v2.md), as a producer has it. */
const SCHEMA = {
  type: 'record',
  name: 'Metric',
  namespace: 'com.metrics.collection',
  fields: [
    { name: 'name', type: 'string' },
    { name: 'value', type: 'double' },
    { name: 'timestamp', type: 'long' },
    { name: 'tags', type: { type: 'map', values: 'string' }, default: {} },
    { name: 'profileId', type: 'string' },
  ],
};
const Metrics = avro.Type.forSchema({ type: 'array', items: SCHEMA } as avro.Schema);
const T0 = Date.now() - 600_000;
const metric = (name: string, i: number, over: Record<string, unknown> = {}) => ({
  name,
  value: i + 0.5,
  timestamp: T0 + i * 1000,
  tags: { host: 'server1' },
  profileId: 'profile123',
  ...over,
});

/** An object container file written by avsc's BlockEncoder (deflate, or `null`: records as they are). */
async function containerFile(records: unknown[], codec = 'deflate'): Promise<Buffer> {
  const encoder = new avro.streams.BlockEncoder(SCHEMA as avro.Schema, { codec });
  const chunks: Buffer[] = [];
  encoder.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve, reject) => encoder.on('end', resolve).on('error', reject));
  for (const r of records) encoder.write(r);
  encoder.end();
  await done;
  return Buffer.concat(chunks);
}

describeEachFlavour('ingest: Avro on /api/v2/app/{app_id}/metrics', (ctx) => {
  const send = (body: Buffer, type = 'avro/binary', headers: Record<string, string> = {}) =>
    ctx.t.request('POST', '/api/v2/app/avro-app/metrics', body, {
      ...ctx.t.authHeaders,
      'content-type': type,
      ...headers,
    });
  const rows = async (metric: string) =>
    (
      await ctx.t.sql.query(`SELECT source, tags, time, value FROM metrics WHERE metric = $1 ORDER BY time`, [metric])
    ).rows.map((r) => [r.source, r.tags, r.time.getTime(), r.value]);

  it('stores an Avro array of Metric records (avro/binary) as the JSON body: app id → source, profileId → tag, ms timestamps', async () => {
    const r = await send(
      Metrics.toBuffer([metric('avro_cpu', 0), metric('avro_cpu', 1, { tags: {}, profileId: 'p2' })]),
    );
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.status, 'success');
    assert.equal(r.json.metrics_accepted, 2);
    assert.deepEqual(await rows('avro_cpu'), [
      ['avro-app', { host: 'server1', profileId: 'profile123' }, T0, 0.5],
      ['avro-app', { profileId: 'p2' }, T0 + 1000, 1.5],
    ]);
    // The JSON body of the same points makes the same series.
    const json = await ctx.t.post('/api/v2/app/avro-app/metrics', { metrics: [metric('avro_cpu', 0, { value: 9 })] });
    assert.equal(json.status, 200);
    assert.deepEqual((await rows('avro_cpu'))[0], ['avro-app', { host: 'server1', profileId: 'profile123' }, T0, 9]);
  });

  it('stores an object container file (application/avro), one record or many, also gzipped', async () => {
    let r = await send(await containerFile([metric('avro_file', 0)]), 'application/avro');
    assert.equal(r.status, 200, r.body);
    r = await send(
      gzipSync(await containerFile(Array.from({ length: 50 }, (_, i) => metric('avro_file', i + 1)))),
      'application/avro',
      { 'content-encoding': 'gzip' },
    );
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.metrics_accepted, 50);
    assert.equal((await rows('avro_file')).length, 51);
  });

  it('stores nothing of a body with one bad record, and names it (400)', async () => {
    const r = await send(Metrics.toBuffer([metric('avro_atomic', 0), metric('avro_atomic', 1, { value: NaN })]));
    assert.equal(r.status, 400);
    assert.equal(r.json.error.details.field, 'metrics[1].value');
    const truncated = Metrics.toBuffer([metric('avro_atomic', 0), metric('avro_atomic', 1)]);
    const t = await send(truncated.subarray(0, truncated.length - 4));
    assert.equal(t.status, 400);
    assert.match(t.json.error.message, /^Avro body: record 1 is truncated/);
    assert.equal(
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series WHERE metric = 'avro_atomic'`)).rows[0].n),
      0,
    );
  });

  it('refuses strings that are not UTF-8 (400 naming the field), and keeps a U+FFFD that was sent', async () => {
    // avsc decodes invalid bytes as U+FFFD: tag values differing only there would be one series.
    const spoil = (b: Buffer) => {
      const at = b.indexOf('BADBYTE');
      b[at] = 0xff;
      return b;
    };
    const records = [metric('avro_utf8', 0), metric('avro_utf8', 1, { tags: { host: 'BADBYTE' } })];
    for (const body of [spoil(Metrics.toBuffer(records)), spoil(await containerFile(records, 'null'))]) {
      const r = await send(body, 'avro/binary');
      assert.equal(r.status, 400, r.body);
      assert.equal(r.json.error.details.field, 'metrics[1].tags');
    }
    // Judged record by record: a U+FFFD sent on purpose in one record does not let another's bad bytes through.
    const mixed = spoil(
      Metrics.toBuffer([
        metric('avro_utf8', 0, { tags: { host: 'a\uFFFDb' } }),
        metric('avro_utf8', 1, { tags: { host: 'BADBYTE' } }),
      ]),
    );
    assert.equal((await send(mixed)).json.error?.details.field, 'metrics[1].tags');
    const named = Metrics.toBuffer([metric('avro_utf8', 0, { name: 'BADBYTE_x' })]);
    assert.equal((await send(spoil(named))).json.error.details.field, 'metrics[0].name');
    assert.equal(
      Number((await ctx.t.sql.query(`SELECT count(*) AS n FROM series WHERE metric = 'avro_utf8'`)).rows[0].n),
      0,
    );
    const sent = await send(Metrics.toBuffer([metric('avro_utf8', 0, { tags: { host: 'a\uFFFDb' } })]));
    assert.equal(sent.status, 200, sent.body);
    assert.deepEqual((await rows('avro_utf8'))[0][1], { host: 'a\uFFFDb', profileId: 'profile123' });
  });

  it('needs an ingest key (403 for a read key), and answers 415 for a type the route does not take', async () => {
    const body = Metrics.toBuffer([metric('avro_auth', 0)]);
    const read = await ctx.t.key(['read']);
    const ingest = await ctx.t.key(['ingest']);
    assert.equal((await send(body, 'avro/binary', { authorization: `Bearer ${read}` })).status, 403);
    assert.equal((await send(body, 'avro/binary', { authorization: `Bearer ${ingest}` })).status, 200);
    const other = await send(body, 'application/octet-stream');
    assert.equal(other.status, 415);
    assert.deepEqual(other.json.error.details.accepted, ['application/json', 'avro/binary', 'application/avro']);
    // Avro is for this route only.
    assert.equal(
      (await ctx.t.request('POST', '/api/v1/metrics', body, { ...ctx.t.authHeaders, 'content-type': 'avro/binary' }))
        .status,
      415,
    );
  });

  it('labels its points avro in the self-metrics (JSON bodies of the route stay app_v2)', async () => {
    const families = parseExposition((await ctx.t.get('/prometheus-metrics')).body);
    assert.equal(
      sampleValue(families, 'timescope_ingest_points_committed_total', { protocol: 'avro' }),
      2 + 1 + 50 + 1 + 1, // the last: the U+FFFD that was sent
    );
    assert.equal(sampleValue(families, 'timescope_ingest_points_committed_total', { protocol: 'app_v2' }), 1);
  });
});
