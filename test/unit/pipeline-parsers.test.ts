import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Problems } from '../../src/common/input.js';
import { parseAggregate } from '../../src/pipelines/parsers/aggregate.js';
import { aggregateColumns, inferMetrics } from '../../src/pipelines/parsers/columns.js';
import type { StageContext } from '../../src/pipelines/parsers/common.js';
import { parseFilter } from '../../src/pipelines/parsers/filter.js';
import { outputObject, parseOutput } from '../../src/pipelines/parsers/output.js';
import { parseSchedule } from '../../src/pipelines/parsers/schedule.js';
import { parseThreshold } from '../../src/pipelines/parsers/threshold.js';
import { parseTransform } from '../../src/pipelines/parsers/transform.js';

const limits = { maxNameLength: 200, maxTags: 64, maxTagKeyLength: 128, maxTagValueLength: 1024 };
const M = 60_000;

/** A stage at `index` with what came before it. */
function context(
  index: number,
  seen: Partial<StageContext['seen']> = {},
  steps: StageContext['steps'] = [],
): StageContext {
  return {
    index,
    field: `pipeline[${index}].params`,
    problems: new Problems(),
    limits,
    seen: { filter: false, aggregate: false, unknownOperation: false, ...seen },
    steps,
  };
}
const fields = (p: Problems) => p.list.map((x) => x.field);

describe('pipeline stage parsers, each on its own', () => {
  it('filter: normalises one value to a list, a single tag value to a string, and refuses a second filter', () => {
    const s = context(0);
    const r = parseFilter({ metric: 'cpu', source: 'a', tags: { host: ['x'], dc: ['eu', 'us'] } }, s);
    assert.deepEqual(r.filter, {
      metrics: ['cpu'],
      sources: ['a'],
      tags: [
        { key: 'host', values: ['x'] },
        { key: 'dc', values: ['eu', 'us'] },
      ],
    });
    assert.deepEqual(r.stage, {
      operation: 'filter',
      params: { metrics: ['cpu'], sources: ['a'], tags: { host: 'x', dc: ['eu', 'us'] } },
    });
    assert.deepEqual(fields(s.problems), []);
    const again = context(2, { filter: true, aggregate: true });
    parseFilter({ metrics: 'cpu', colour: 1 }, again);
    assert.deepEqual(fields(again.problems), [
      'pipeline[2].params.colour',
      'pipeline[2].operation',
      'pipeline[2].operation',
    ]);
  });

  it('aggregate: window in ms, functions deduplicated, group keys checked', () => {
    const s = context(1);
    const r = parseAggregate({ window: ' 5m ', functions: ['avg', 'avg', 'p95'], group_by: 'host' }, s);
    assert.deepEqual(r.aggregate, { window: '5m', windowMs: 5 * M, functions: ['avg', 'p95'], groupBy: ['host'] });
    assert.deepEqual(fields(s.problems), []);
    const bad = context(1);
    parseAggregate({ window: '8d', functions: ['median'], group_by: ['__x'] }, bad);
    assert.deepEqual(fields(bad.problems), [
      'pipeline[1].params.window',
      'pipeline[1].params.functions[0]',
      'pipeline[1].params.group_by[0]',
    ]);
  });

  it('row stages must follow the aggregate; a threshold defaults to the last transform', () => {
    const early = context(0);
    parseTransform({ formula: 'avg_cpu * 2' }, early);
    assert.deepEqual(fields(early.problems), ['pipeline[0].operation']);
    const t = parseTransform({ formula: 'avg_cpu * 2', as: 'double' }, context(2, { aggregate: true }))!;
    const th = parseThreshold({ op: '>', value: 1 }, context(3, { aggregate: true }, [t.step]));
    assert.deepEqual(th?.stage, { operation: 'threshold', params: { column: 'double', op: '>', value: 1 } });
  });

  it('columns: metrics inferred from the names later stages use; two metrics giving one column is a problem', () => {
    const t = parseTransform({ formula: 'avg_cpu + max_memory' }, context(2, { aggregate: true }))!;
    assert.deepEqual(inferMetrics([t.step], ['avg', 'max'], undefined), ['cpu', 'memory']);
    const p = new Problems();
    assert.deepEqual(aggregateColumns(['cpu.usage', 'cpu_usage'], ['avg'], p), ['avg_cpu_usage']);
    assert.deepEqual(fields(p), ['pipeline']);
  });

  it('output: metric column defaults to the only column; absent output is none', () => {
    const p = new Problems();
    const out = outputObject({ destination: 'metric', metric: 'cpu_p95' }, p);
    const r = parseOutput(out, { problems: p, limits, steps: [], columns: ['p95_cpu'], groupBy: [] });
    assert.deepEqual(r.output, {
      destination: 'metric',
      metric: 'cpu_p95',
      column: 'p95_cpu',
      source: null,
      tags: {},
      unit: null,
    });
    assert.deepEqual(
      parseOutput(outputObject(undefined, p), { problems: p, limits, steps: [], columns: null, groupBy: [] }).output,
      { destination: 'none' },
    );
    assert.deepEqual(fields(p), []);
  });

  it('schedule: steps by every, else by the window; bounds overlap and delay', () => {
    const agg = parseAggregate({ window: '5m', functions: ['avg'] }, context(1)).aggregate;
    const p = new Problems();
    assert.deepEqual(parseSchedule(null, agg, p), { schedule: null, stepMs: 5 * M, delayMs: 30_000 });
    assert.deepEqual(parseSchedule({ every: '1m', delay: '0s' }, agg, p), {
      schedule: { every: '1m', delay: '0s' },
      stepMs: M,
      delayMs: 0,
    });
    assert.deepEqual(fields(p), []);
    parseSchedule({ every: '1s', delay: '2d' }, agg, p);
    assert.deepEqual(fields(p), ['schedule.every', 'schedule.delay']);
  });
});
