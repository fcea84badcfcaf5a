import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ADVISORY_LOCKS,
  JOB_LOCK_NAMESPACE,
  jobLockKey,
  MIGRATION_LOCK,
  PIPELINE_LOCK_NAMESPACE,
  pipelineLockKey,
  ROLLUP_WATERMARK_LOCK,
} from '../../src/database/advisory-locks.js';

const INT4 = 2 ** 31;

describe('advisory lock registry', () => {
  it('gives every lock a key of its own within its key space', () => {
    for (const space of ['single', 'namespace'] as const) {
      const keys = ADVISORY_LOCKS.filter((l) => l.space === space).map((l) => l.key);
      assert.equal(new Set(keys).size, keys.length, `${space} keys repeat: ${keys.join(', ')}`);
    }
    assert.equal(new Set(ADVISORY_LOCKS.map((l) => l.name)).size, ADVISORY_LOCKS.length);
  });

  it('lists every exported key', () => {
    const listed = (space: string, key: number) => ADVISORY_LOCKS.some((l) => l.space === space && l.key === key);
    assert.ok(listed('single', MIGRATION_LOCK));
    assert.ok(listed('single', ROLLUP_WATERMARK_LOCK));
    assert.ok(listed('namespace', JOB_LOCK_NAMESPACE));
    assert.ok(listed('namespace', PIPELINE_LOCK_NAMESPACE));
  });

  it('keeps keys where PostgreSQL takes them: bigint single keys, int4 namespaces and second keys', () => {
    for (const l of ADVISORY_LOCKS) {
      assert.ok(Number.isSafeInteger(l.key), l.name);
      if (l.space === 'namespace') assert.ok(l.key >= -INT4 && l.key < INT4, l.name);
    }
    for (const name of ['rollup-refresh', 'retention', 'pipelines', 'a-job-name-that-is-rather-long-indeed']) {
      const k = jobLockKey(name);
      assert.ok(Number.isInteger(k) && k >= -INT4 && k < INT4, name);
    }
    for (const id of [1, 2_147_483_646, 2_147_483_647, 9_007_199_254_740_991]) {
      const k = pipelineLockKey(id);
      assert.ok(Number.isInteger(k) && k >= 0 && k < INT4, String(id));
    }
  });

  it('derives a job key from its name alone, so every instance takes the same lock', () => {
    // Fixed values: a changed hash would let an old and a new instance run the same job at once.
    assert.equal(jobLockKey('rollup-refresh'), 891_700_657);
    assert.notEqual(jobLockKey('rollup-refresh'), jobLockKey('retention'));
    assert.equal(jobLockKey(''), 0x811c9dc5 | 0);
  });
});
