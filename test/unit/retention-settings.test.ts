import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, settleConfig } from '../../src/config/config.js';
import { expiredRanges, retentionCutoff, rollupRetentionDays } from '../../src/retention/retention-plan.js';
import {
  applyLive,
  checkConfig,
  diffConfig,
  effectiveConfig,
  mergeStored,
  parsePatch,
  settingsDocument,
  settingSources,
} from '../../src/settings/settings-schema.js';

const DAY = 86_400_000;
const day = (n: number) => ({ name: `points_p${n}`, from: n * DAY, to: (n + 1) * DAY });

describe('retention decisions', () => {
  const now = 20 * DAY + 6 * 3_600_000; // day 20, 06:00

  it('drops only partitions wholly older than the cutoff', () => {
    const cutoff = retentionCutoff(now, 7)!; // day 13, 06:00
    const drop = expiredRanges([day(15), day(12), day(13), day(11), day(20)], cutoff);
    assert.deepEqual(
      drop.map((r) => r.name),
      ['points_p11', 'points_p12'],
      'day 13 straddles the cutoff and stays',
    );
  });

  it('a range ending exactly at the cutoff goes', () => {
    assert.deepEqual(
      expiredRanges([day(12)], 13 * DAY).map((r) => r.name),
      ['points_p12'],
    );
  });

  it('0 days keeps everything; open-ended ranges are never expired', () => {
    assert.equal(retentionCutoff(now, 0), null);
    assert.deepEqual(expiredRanges([day(1)], null), []);
    assert.deepEqual(expiredRanges([{ name: 'int', from: -Infinity, to: Infinity }], now), []);
  });

  it('rollups are kept at least as long as raw points, forever when raw points are', () => {
    assert.equal(rollupRetentionDays(7, 365), 365);
    assert.equal(rollupRetentionDays(30, 10), 30);
    assert.equal(rollupRetentionDays(0, 365), 0);
    assert.equal(rollupRetentionDays(7, 0), 0);
  });
});

describe('runtime settings', () => {
  const env = loadConfig({ METRICS_RETENTION_DAYS: '14' });
  const defaults = loadConfig({});

  it('the reference document, durations as text', () => {
    const doc = settingsDocument(env, 'timescaledb') as any;
    assert.deepEqual(doc.storage, {
      retention_days: 14,
      rollup_retention_days: 365,
      compression_enabled: true,
      batch_size: 50_000,
    });
    assert.deepEqual(doc.processing, { buffer_size: 500_000, flush_interval: '0s', worker_threads: 2 });
    assert.deepEqual(doc.collector, {
      enabled: true,
      interval_live: '5s',
      interval_persist: '30s',
      buffer_max_points: 200_000,
    });
    assert.equal(doc.jobs.retention_interval, '1h');
    assert.equal((settingsDocument(env, 'postgresql') as any).storage.compression_enabled, false);
  });

  it('a patch names every bad field and unknown ones', () => {
    const { problems } = parsePatch({
      storage: { retention_days: -1, rollup_retention_days: 'x', colour: 'red' },
      collector: { interval_live: '1.5s' },
      nonsense: 1,
      processing: 5,
    });
    assert.deepEqual(
      problems.map((p) => p.field),
      [
        'storage.retention_days',
        'storage.rollup_retention_days',
        'storage.colour',
        'collector.interval_live',
        'nonsense',
        'processing',
      ],
    );
    assert.match(problems[0].message, /between 0 and 100000/);
    assert.deepEqual(
      parsePatch([]).problems.map((p) => p.field),
      ['(body)'],
    );
  });

  it('durations accept seconds or text and are stored as text; null removes a stored value', () => {
    const { values, problems } = parsePatch({
      collector: { interval_live: 10, interval_persist: '2m' },
      storage: { retention_days: null },
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(
      [...values],
      [
        ['collector.interval_live', '10s'],
        ['collector.interval_persist', '2m'],
        ['storage.retention_days', null],
      ],
    );
    assert.deepEqual(mergeStored({ 'storage.retention_days': 3, 'alerting.enabled': false }, values), {
      'alerting.enabled': false,
      'collector.interval_live': '10s',
      'collector.interval_persist': '2m',
    });
  });

  it('stored over environment over defaults', () => {
    const c = effectiveConfig(env, { 'collector.interval_live': '10s', 'storage.batch_size': 1_000 });
    assert.equal(c.collector.liveSeconds, 10);
    assert.equal(c.ingest.flushMaxPoints, 1_000);
    assert.equal(c.retentionDays, 14);
    assert.equal(env.collector.liveSeconds, 5, 'the baseline is not touched');
    assert.deepEqual(
      Object.entries(settingSources({ 'storage.batch_size': 1_000 }, env, defaults)).filter(([, v]) => v !== 'default'),
      [
        ['storage.retention_days', 'environment'],
        ['storage.batch_size', 'stored'],
      ],
    );
  });

  it('rules between fields, checked when the request touches them', () => {
    const patch = parsePatch({
      storage: { rollup_retention_days: 10 },
      collector: { interval_persist: '2s' },
      processing: { flush_interval: '5s' },
    }).values;
    const next = effectiveConfig(env, Object.fromEntries([...patch].filter(([, v]) => v !== null)) as never);
    const problems = checkConfig(next, env, 'postgresql', patch);
    assert.deepEqual(
      problems.map((p) => p.field),
      ['processing.flush_interval', 'storage.rollup_retention_days', 'collector.interval_persist'],
    );
    assert.deepEqual(
      checkConfig(next, env, 'postgresql', parsePatch({ alerting: { enabled: false } }).values),
      [],
      'an unrelated change is not refused',
    );
    assert.deepEqual(
      checkConfig(env, env, 'postgresql', parsePatch({ processing: { flush_interval: '0s' } }).values),
      [],
      'read-only fields may be sent back unchanged',
    );
    assert.deepEqual(
      checkConfig(env, env, 'postgresql', parsePatch({ storage: { compression_enabled: true } }).values).map(
        (p) => p.field,
      ),
      ['storage.compression_enabled'],
    );
    // worker_threads: past DB_POOL_MAX - 3 is refused on a change, never when put back as it runs.
    const small = loadConfig({ DB_POOL_MAX: '8', DB_WRITE_CONNECTIONS: '6' });
    const threads = (n: number) => parsePatch({ processing: { worker_threads: n } }).values;
    const asked = (n: number) => effectiveConfig(small, { 'processing.worker_threads': n });
    assert.deepEqual(checkConfig(asked(6), small, 'postgresql', threads(6)), [], 'the running value');
    assert.deepEqual(
      checkConfig(asked(7), small, 'postgresql', threads(7)).map((p) => p.message),
      [
        'at most 5 with DB_POOL_MAX=8: the writer takes worker_threads + 1 connections and reads need at least 2 of the rest (raise DB_POOL_MAX for more)',
      ],
    );
  });

  it('live fields are applied in place; restart-only ones wait', () => {
    const running = structuredClone(env);
    const wanted = effectiveConfig(env, { 'storage.retention_days': 3, 'processing.worker_threads': 8 });
    assert.deepEqual(
      diffConfig(running, wanted, 'postgresql').map((c) => c.field),
      ['storage.retention_days', 'processing.worker_threads'],
    );
    applyLive(running, wanted);
    assert.equal(running.retentionDays, 3);
    assert.equal(running.db.writeConnections, 2);
  });
});

describe('rules between settings in the environment', () => {
  it('a default yields to a variable the operator set', () => {
    const c = loadConfig({ METRICS_RETENTION_DAYS: '400', METRICS_INTERVAL_LIVE: '60' });
    assert.equal(c.retention.rollupDays, 400, 'rollups kept at least as long as raw points');
    assert.equal(c.collector.persistSeconds, 60, 'persisting no more often than sampling');
    assert.equal(
      loadConfig({ METRICS_RETENTION_DAYS: '0' }).retention.rollupDays,
      0,
      'raw points forever: rollups too',
    );
    assert.equal(
      (settingsDocument(loadConfig({ METRICS_RETENTION_DAYS: '0' }), 'postgresql') as any).storage
        .rollup_retention_days,
      0,
      'the value in force is the one shown',
    );
    assert.equal(loadConfig({}).retention.rollupDays, 365);
  });

  it('two variables set against each other are refused at start, naming both', () => {
    assert.throws(
      () => loadConfig({ METRICS_INTERVAL_LIVE: '60', METRICS_INTERVAL_PERSIST: '30' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /METRICS_INTERVAL_PERSIST: 30 must be at least METRICS_INTERVAL_LIVE \(60\)/);
        return true;
      },
    );
    assert.throws(
      () => loadConfig({ METRICS_INTERVAL_PERSIST: '2' }),
      /at least METRICS_INTERVAL_LIVE \(5\)/,
      'against the default live interval',
    );
    assert.throws(
      () => loadConfig({ METRICS_RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '10' }),
      /ROLLUP_RETENTION_DAYS: 10 must be 0 \(forever\) or at least METRICS_RETENTION_DAYS \(30\)/,
    );
    assert.throws(
      () => loadConfig({ METRICS_RETENTION_DAYS: '0', ROLLUP_RETENTION_DAYS: '365' }),
      /must be 0 \(forever\) when METRICS_RETENTION_DAYS is 0/,
    );
    assert.throws(() => loadConfig({ ROLLUP_RETENTION_DAYS: '3' }), /at least METRICS_RETENTION_DAYS \(7\)/);
    assert.equal(
      loadConfig({ METRICS_RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '0' }).retention.rollupDays,
      0,
      'rollups forever is always fine',
    );
  });

  it('stored values that no longer fit are raised, never lowered', () => {
    const c = effectiveConfig(loadConfig({ ROLLUP_RETENTION_DAYS: '30' }), {
      'storage.retention_days': 60,
      'collector.interval_live': '2m',
    });
    const adjusted = settleConfig(c);
    assert.deepEqual(
      adjusted.map((a) => [a.field, a.from, a.to]),
      [
        ['collector.interval_persist', 30, 120],
        ['storage.rollup_retention_days', 30, 60],
      ],
    );
    assert.equal(c.retentionDays, 60);
    assert.deepEqual(settleConfig(c), [], 'settled');
  });
});
