import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../../src/common/errors.js';
import { isStatusReport, parsePipeline } from '../../src/pipelines/parse-pipeline.js';
import { assemble, derivedPoints } from '../../src/pipelines/execute.js';
import { backoffMs, countWindows, dueWindows, lastWindow, windowEnds } from '../../src/pipelines/windows.js';
import { referencePipeline } from '../support/fixtures.js';

const limits = { maxNameLength: 200, maxTags: 64, maxTagKeyLength: 128, maxTagValueLength: 1024 };
const M = 60_000;

const reference = referencePipeline;

/** The fields a rejected definition names (all of them). */
function fieldsOf(body: unknown): string[] {
  try {
    parsePipeline(body, limits);
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.getStatus(), 400);
    return (e.details!.errors as Array<{ field: string }>).map((x) => x.field);
  }
  assert.fail('accepted');
}

const withStage = (i: number, stage: unknown) => {
  const b = reference() as { pipeline: unknown[] };
  b.pipeline[i] = stage;
  return b;
};

describe('pipeline definition: the reference example', () => {
  it('is accepted; the metrics come from the column names the formula uses', () => {
    const { definition, plan, secret } = parsePipeline(reference(), limits);
    assert.deepEqual(plan.metrics, ['cpu', 'memory']);
    assert.deepEqual(plan.columns, ['avg_cpu', 'max_cpu', 'avg_memory', 'max_memory', 'value']);
    assert.deepEqual(plan.tags, [{ key: 'experiment_id', values: ['exp_001'] }]);
    assert.equal(plan.windowMs, 5 * M);
    assert.equal(plan.stepMs, 5 * M); // on demand: tumbling windows
    assert.equal(definition.schedule, null);
    assert.equal(secret, undefined);
    assert.deepEqual(definition.pipeline[2], {
      operation: 'transform',
      params: { formula: 'avg_cpu + max_memory', as: 'value' },
    });
  });
  it('gives the same plan when its normalised form is parsed again (what is stored runs as saved)', () => {
    const first = parsePipeline({ ...reference(), schedule: { every: '1m' } }, limits);
    const again = parsePipeline(first.definition, limits);
    assert.deepEqual(again.definition, first.definition);
    assert.deepEqual(again.plan.columns, first.plan.columns);
    assert.equal(again.plan.stepMs, M);
  });
  it('ignores the read-only fields of a GET document sent back with PUT', () => {
    const doc = {
      ...parsePipeline(reference(), limits).definition,
      id: 3,
      version: 2,
      created_at: 'x',
      updated_at: 'x',
      columns: [],
      state: {},
      last_run: null,
      webhook_signed: true,
    };
    assert.equal(parsePipeline(doc, limits).definition.name, 'experiment_summary');
  });
});

describe('pipeline definition: every problem is a 400 naming the stage index and field', () => {
  it('unknown stages, fields and functions', () => {
    assert.deepEqual(fieldsOf(withStage(1, { operation: 'aggregat', params: { window: '5m', functions: ['avg'] } })), [
      'pipeline[1].operation',
    ]);
    assert.deepEqual(
      fieldsOf(withStage(1, { operation: 'aggregate', params: { window: '5m', functions: ['avg', 'median'] } })),
      ['pipeline[1].params.functions[1]', 'pipeline[2].params.formula'],
    ); // max_memory needs max
    assert.deepEqual(
      fieldsOf(withStage(1, { operation: 'aggregate', params: { window: '5m', functions: ['avg', 'max'], windw: 1 } })),
      ['pipeline[1].params.windw'],
    );
    assert.deepEqual(fieldsOf(withStage(0, { operation: 'filter', params: { tags: {} }, extra: true })), [
      'pipeline[0].extra',
    ]);
    assert.deepEqual(fieldsOf({ ...reference(), colour: 'blue' }), ['colour']);
    assert.deepEqual(
      fieldsOf({ ...reference(), output: { destination: 'webhook', url: 'https://x.example', method: 'PUT' } }),
      ['output.method'],
    );
  });
  it('a window that is not a duration', () => {
    for (const window of ['5 minutes', '0m', '-5m', '1.5h', 5, '', '8d']) {
      assert.deepEqual(
        fieldsOf(withStage(1, { operation: 'aggregate', params: { window, functions: ['avg', 'max'] } })),
        ['pipeline[1].params.window'],
        String(window),
      );
    }
  });
  it('a formula that does not parse, is hostile, or names a column no stage produces', () => {
    assert.deepEqual(fieldsOf(withStage(2, { operation: 'transform', params: { formula: 'avg_cpu +' } })), [
      'pipeline[2].params.formula',
    ]);
    assert.deepEqual(
      fieldsOf(
        withStage(2, { operation: 'transform', params: { formula: "constructor.constructor('return process')()" } }),
      ),
      ['pipeline[2].params.formula'],
    );
    assert.deepEqual(fieldsOf(withStage(2, { operation: 'transform', params: { formula: 'process.exit()' } })), [
      'pipeline[2].params.formula',
    ]);
    // With the metrics named in the filter, a column of another metric or function is unknown.
    const named = {
      ...reference(),
      pipeline: [
        { operation: 'filter', params: { metrics: ['cpu'] } },
        { operation: 'aggregate', params: { window: '5m', functions: ['avg'] } },
        { operation: 'transform', params: { formula: 'avg_cpu + max_cpu' } },
      ],
    };
    assert.deepEqual(fieldsOf(named), ['pipeline[2].params.formula']);
    // A column named before the stage that makes it.
    const early = {
      ...named,
      pipeline: [
        ...named.pipeline.slice(0, 2),
        { operation: 'threshold', params: { column: 'value', op: '>', value: 1 } },
        { operation: 'transform', params: { formula: 'avg_cpu * 2' } },
      ],
    };
    assert.deepEqual(fieldsOf(early), ['pipeline[2].params.column']);
  });
  it('stages in an order that cannot work', () => {
    const b = reference();
    assert.deepEqual(fieldsOf({ ...b, pipeline: [b.pipeline[2], b.pipeline[1]] }), ['pipeline[0].operation']);
    assert.deepEqual(fieldsOf({ ...b, pipeline: [b.pipeline[1], b.pipeline[0]] }), ['pipeline[1].operation']);
    assert.deepEqual(fieldsOf({ ...b, pipeline: [b.pipeline[0]] }), ['pipeline']);
    assert.deepEqual(fieldsOf({ ...b, pipeline: [b.pipeline[1], b.pipeline[1]] }), ['pipeline[1].operation']);
    assert.deepEqual(fieldsOf({ ...b, pipeline: [] }), ['pipeline']);
  });
  it('names, outputs and schedules', () => {
    assert.deepEqual(fieldsOf({ ...reference(), name: '' }), ['name']);
    assert.deepEqual(fieldsOf({ ...reference(), name: 'a b' }), ['name']);
    assert.deepEqual(fieldsOf({ ...reference(), output: { destination: 'email' } }), ['output.destination']);
    assert.deepEqual(fieldsOf({ ...reference(), output: { destination: 'webhook' } }), ['output.url']);
    assert.deepEqual(
      fieldsOf({ ...reference(), output: { destination: 'webhook', url: 'https://x.example', secret: 'short' } }),
      ['output.secret'],
    );
    assert.deepEqual(fieldsOf({ ...reference(), output: { destination: 'metric', metric: '9lives' } }), [
      'output.metric',
    ]);
    assert.deepEqual(fieldsOf({ ...reference(), output: { destination: 'metric', metric: 'x', column: 'total' } }), [
      'output.column',
    ]);
    assert.deepEqual(
      fieldsOf({ ...reference(), output: { destination: 'metric', metric: 'x', tags: { constructor: 'a' } } }),
      ['output.tags.constructor'],
    );
    assert.deepEqual(fieldsOf({ ...reference(), schedule: { every: 'often' } }), ['schedule.every']);
    assert.deepEqual(fieldsOf({ ...reference(), schedule: { every: '1s' } }), ['schedule.every']); // a 5m window every 1s
    assert.deepEqual(fieldsOf({ ...reference(), schedule: { every: '1m', delay: '2d' } }), ['schedule.delay']);
    assert.deepEqual(fieldsOf({ ...reference(), schedule: { every: '1m', at: 'noon' } }), ['schedule.at']);
    assert.deepEqual(fieldsOf('pipeline'), ['body']);
  });
  it('collects several problems at once', () => {
    assert.deepEqual(fieldsOf({ ...reference(), name: '', schedule: { every: 'x' }, output: { destination: 'x' } }), [
      'name',
      'output.destination',
      'schedule.every',
    ]);
  });
  it('metrics whose names give one column', () => {
    const b = {
      name: 'p',
      pipeline: [
        { operation: 'filter', params: { metrics: ['cpu.usage', 'cpu_usage'] } },
        { operation: 'aggregate', params: { window: '1m', functions: ['avg'] } },
      ],
    };
    assert.deepEqual(fieldsOf(b), ['pipeline']);
  });
  it('rename, select and threshold check their columns', () => {
    const base = [
      { operation: 'filter', params: { metrics: 'cpu' } },
      { operation: 'aggregate', params: { window: '1m', functions: ['avg', 'max'] } },
    ];
    const p = (...more: unknown[]) => ({ name: 'p', pipeline: [...base, ...more] });
    assert.deepEqual(fieldsOf(p({ operation: 'rename', params: { columns: { avg_cpu: 'max_cpu' } } })), [
      'pipeline[2].params.columns',
    ]);
    assert.deepEqual(fieldsOf(p({ operation: 'rename', params: { columns: { avg_gpu: 'g' } } })), [
      'pipeline[2].params.columns.avg_gpu',
    ]);
    assert.deepEqual(fieldsOf(p({ operation: 'rename', params: { columns: { avg_cpu: 'a-b' } } })), [
      'pipeline[2].params.columns.avg_cpu',
    ]);
    assert.deepEqual(fieldsOf(p({ operation: 'select', params: { columns: ['avg_cpu', 'avg_cpu'] } })), [
      'pipeline[2].params.columns',
    ]);
    assert.deepEqual(
      fieldsOf(
        p(
          { operation: 'select', params: { columns: ['avg_cpu'] } },
          { operation: 'transform', params: { formula: 'max_cpu' } },
        ),
      ),
      ['pipeline[3].params.formula'],
    );
    assert.deepEqual(fieldsOf(p({ operation: 'threshold', params: { column: 'avg_cpu', op: '=>', value: 1 } })), [
      'pipeline[2].params.op',
    ]);
    assert.deepEqual(fieldsOf(p({ operation: 'threshold', params: { op: '>', value: 1 } })), [
      'pipeline[2].params.column',
    ]);
    assert.deepEqual(fieldsOf(p({ operation: 'threshold', params: { condition: 'avg_cpu > 1', op: '>' } })), [
      'pipeline[2].params.condition',
    ]);
    assert.deepEqual(fieldsOf(p({ operation: 'transform', params: { formula: '1', as: 'avg_cpu' } })), [
      'pipeline[2].params.as',
    ]);
    const ok = parsePipeline(
      p(
        { operation: 'rename', params: { columns: { avg_cpu: 'cpu' } } },
        { operation: 'transform', params: { formula: 'max_cpu - cpu', as: 'spread' } },
        { operation: 'threshold', params: { op: '>', value: 5 } },
        { operation: 'select', params: { columns: ['spread', 'cpu'] } },
      ),
      limits,
    );
    assert.deepEqual(ok.plan.columns, ['spread', 'cpu']);
  });
  it('the output column defaults to the last transform, else the only column', () => {
    assert.equal(
      parsePipeline({ ...reference(), output: { destination: 'metric', metric: 'summary' } }, limits).definition.output
        .destination,
      'metric',
    );
    const one = {
      name: 'p',
      pipeline: [
        { operation: 'filter', params: { metrics: ['cpu'] } },
        { operation: 'aggregate', params: { window: '1m', functions: ['p95'] } },
      ],
      output: { destination: 'metric', metric: 'cpu_p95' },
    };
    assert.deepEqual(parsePipeline(one, limits).definition.output, {
      destination: 'metric',
      metric: 'cpu_p95',
      column: 'p95_cpu',
      source: null,
      tags: {},
      unit: null,
    });
    const several = {
      ...one,
      pipeline: [one.pipeline[0], { operation: 'aggregate', params: { window: '1m', functions: ['p95', 'p99'] } }],
    };
    assert.deepEqual(fieldsOf(several), ['output.column']);
  });
  it('without named metrics or column references, the metrics are found when it runs', () => {
    const { plan } = parsePipeline(
      {
        name: 'all',
        pipeline: [
          { operation: 'filter', params: { sources: ['fl_server'] } },
          { operation: 'aggregate', params: { window: '1m', functions: ['count'] } },
        ],
      },
      limits,
    );
    assert.equal(plan.metrics, null);
    assert.equal(plan.columns, null);
  });
  it('tells a pipeline status report from a definition', () => {
    assert.equal(isStatusReport({ pipeline_type: 'etl', status: 'running', metadata: {} }), true);
    assert.equal(isStatusReport(reference()), false);
  });
});

describe('pipeline windows', () => {
  it('a range covers the windows whose end falls in (from, to], and only ended ones', () => {
    const t0 = Date.UTC(2024, 0, 15, 10);
    assert.deepEqual(windowEnds(t0, t0 + 15 * M, 5 * M, Infinity), [t0 + 5 * M, t0 + 10 * M, t0 + 15 * M]);
    assert.deepEqual(windowEnds(t0 + 2 * M, t0 + 14 * M, 5 * M, Infinity), [t0 + 5 * M, t0 + 10 * M]);
    assert.deepEqual(windowEnds(t0, t0 + 15 * M, 5 * M, t0 + 12 * M), [t0 + 5 * M, t0 + 10 * M]);
    // Consecutive ranges never share a window.
    const a = windowEnds(t0, t0 + 7 * M, M, Infinity),
      b = windowEnds(t0 + 7 * M, t0 + 12 * M, M, Infinity);
    assert.deepEqual([...a, ...b], windowEnds(t0, t0 + 12 * M, M, Infinity));
    assert.equal(countWindows(t0, t0 + 15 * M, 5 * M, Infinity), 3);
    assert.equal(countWindows(t0, t0, 5 * M, Infinity), 0);
    assert.deepEqual(lastWindow(t0 + 7 * M, 5 * M, 5 * M), { from: t0, to: t0 + 5 * M });
  });
  it('a new scheduled pipeline starts with the latest window that ended delay ago', () => {
    const t0 = Date.UTC(2024, 0, 15, 10);
    const d = dueWindows(null, t0 + 5 * M + 10_000, 5 * M, 30_000, 60);
    assert.deepEqual(d.ends, [t0]);
    assert.equal(d.nextDueAt, t0 + 5 * M + 30_000);
    assert.deepEqual(dueWindows(null, t0 + 5 * M + 40_000, 5 * M, 30_000, 60).ends, [t0 + 5 * M]);
  });
  it('then runs each window once, after it ended', () => {
    const t0 = Date.UTC(2024, 0, 15, 10);
    assert.deepEqual(dueWindows(t0, t0 + 4 * M, 5 * M, 0, 60).ends, []);
    assert.equal(dueWindows(t0, t0 + 4 * M, 5 * M, 0, 60).nextDueAt, t0 + 5 * M);
    assert.deepEqual(dueWindows(t0, t0 + 5 * M, 5 * M, 0, 60).ends, [t0 + 5 * M]);
    assert.deepEqual(dueWindows(t0, t0 + 11 * M, 5 * M, 0, 60).ends, [t0 + 5 * M, t0 + 10 * M]);
  });
  it('catches up at most PIPELINE_MAX_CATCHUP_WINDOWS after downtime and reports the rest as skipped', () => {
    const t0 = Date.UTC(2024, 0, 15, 10);
    const d = dueWindows(t0, t0 + 24 * 60 * M, 5 * M, 0, 3);
    assert.deepEqual(d.ends, [t0 + 1430 * M, t0 + 1435 * M, t0 + 1440 * M]);
    assert.equal(d.skipped, 288 - 3);
    assert.equal(d.skippedFrom, t0);
    assert.equal(d.skippedTo, t0 + 1425 * M);
  });
  it('backs off failures from one step, doubling, up to an hour', () => {
    assert.equal(backoffMs(60_000, 1), 60_000);
    assert.equal(backoffMs(60_000, 3), 240_000);
    assert.equal(backoffMs(1_000, 1), 5_000);
    assert.equal(backoffMs(60_000, 30), 3_600_000);
  });
});

describe('pipeline rows', () => {
  const t0 = Date.UTC(2024, 0, 15, 10);
  const plan = parsePipeline(
    {
      name: 'p',
      pipeline: [
        { operation: 'filter', params: { metrics: ['cpu', 'mem'] } },
        { operation: 'aggregate', params: { window: '5m', functions: ['avg', 'count'], group_by: ['host'] } },
        { operation: 'transform', params: { formula: 'avg_cpu / avg_mem', as: 'ratio' } },
      ],
      output: { destination: 'metric', metric: 'cpu_per_mem', tags: { team: 'infra' } },
    },
    limits,
  ).plan;

  it('pivots cells into one row per window and group; a metric absent from a group counted zero points', () => {
    const exec = assemble(
      plan,
      [t0 + 5 * M, t0 + 10 * M],
      [
        { t: t0, metric: 'cpu', group: ['a'], values: [50, 3] },
        { t: t0, metric: 'mem', group: ['a'], values: [25, 3] },
        { t: t0, metric: 'cpu', group: [null], values: [10, 1] },
        { t: t0 + 5 * M, metric: 'mem', group: ['b'], values: [0, 2] },
      ],
    );
    assert.deepEqual(exec.columns, ['avg_cpu', 'count_cpu', 'avg_mem', 'count_mem', 'ratio']);
    assert.equal(exec.rowCount, 3);
    assert.deepEqual(
      exec.windows[0].rows.map((r) => [r.group.host, r.values]),
      [
        ['a', [50, 3, 25, 3, 2]],
        [null, [10, 1, null, 0, null]],
      ],
    );
    assert.deepEqual(
      exec.windows[1].rows.map((r) => r.values),
      [[null, 0, 0, 2, null]],
    ); // 0 / 0 is null
    const { points, skippedNulls } = derivedPoints(plan, exec);
    assert.deepEqual(points, [
      { metric: 'cpu_per_mem', source: 'pipeline:p', tags: { host: 'a', team: 'infra' }, timestamp: t0, value: 2 },
    ]);
    assert.equal(skippedNulls, 2);
  });

  it('leaves out values beyond the stored range, counted apart from nulls', () => {
    const exec = assemble(
      plan,
      [t0 + 5 * M],
      [
        { t: t0, metric: 'cpu', group: ['a'], values: [1e300, 3] },
        { t: t0, metric: 'mem', group: ['a'], values: [1e-3, 3] }, // ratio 1e303
        { t: t0, metric: 'cpu', group: ['b'], values: [4, 1] },
        { t: t0, metric: 'mem', group: ['b'], values: [2, 1] },
        { t: t0, metric: 'cpu', group: ['c'], values: [4, 1] },
      ],
    );
    const { points, skippedNulls, skippedOutOfRange } = derivedPoints(plan, exec);
    assert.deepEqual(
      points.map((p) => [p.tags.host, p.value]),
      [['b', 2]],
    );
    assert.deepEqual([skippedNulls, skippedOutOfRange], [1, 1]);
  });
});
