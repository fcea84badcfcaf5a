import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TimeWindow } from '../../src/common/input.js';
import {
  decodeEvents,
  decodeLogs,
  decodePolicyEvents,
  encodeCursor,
  normaliseLevel,
  parseEventFilter,
} from '../../src/events/event-input.js';
import { decodeStatusReport, statusEvent } from '../../src/events/pipeline-status.js';
import { decodeServiceReport, serviceEvent } from '../../src/service-status/service-status.js';

const NOW = Date.UTC(2025, 5, 16, 10, 30);
const w: TimeWindow = { now: NOW, retentionDays: 30, maxFutureMs: 600_000, retentionSetting: 'EVENTS_RETENTION_DAYS' };
const fieldOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { details: { field: string } }).details.field;
  }
  return undefined;
};

describe('event bodies', () => {
  it('take one event or a list, with the usual aliases (service, metadata, warning)', () => {
    const [e] = decodeEvents(
      { kind: 'log', service: 'web', level: 'WARNING', message: 'slow', metadata: { ms: 950 } },
      w,
    );
    assert.deepEqual(e, {
      time: NOW,
      kind: 'log',
      source: 'web',
      level: 'warn',
      message: 'slow',
      attributes: { ms: 950 },
    });
    assert.equal(
      decodeEvents({ events: [{ kind: 'a' }, { kind: 'b', timestamp: '2025-06-16T10:00:00.123456Z' }] }, w)[1].time,
      Date.UTC(2025, 5, 16, 10, 0, 0, 123),
    );
    assert.equal(normaliseLevel('fatal'), 'critical');
  });

  it('map a reference policy event to a policy-kind event with its level from the result', () => {
    const [e] = decodePolicyEvents(
      {
        policy_id: 'network_quality',
        event_type: 'policy_violation',
        target: 'link_1',
        result: 'denied',
        details: { value: 105 },
      },
      w,
    );
    assert.equal(e.kind, 'policy');
    assert.equal(e.level, 'warn');
    assert.equal(e.message, 'policy_violation network_quality on link_1: denied');
    assert.deepEqual(e.attributes, {
      policy_id: 'network_quality',
      event_type: 'policy_violation',
      target: 'link_1',
      result: 'denied',
      details: { value: 105 },
    });
  });

  it('require a message for a log line and a kind for anything else', () => {
    assert.equal(
      fieldOf(() =>
        decodeLogs(
          {
            logs: [
              { level: 'info', service: 's', message: 'ok' },
              { level: 'info', service: 's' },
            ],
          },
          w,
        ),
      ),
      'logs[1].message',
    );
    assert.equal(
      fieldOf(() => decodeEvents({ message: 'x' }, w)),
      'kind',
    );
    assert.equal(
      fieldOf(() =>
        decodeEvents({ kind: 'x', attributes: { deep: JSON.parse('['.repeat(20) + ']'.repeat(20)) } }, w),
      )?.startsWith('attributes.deep'),
      true,
    );
  });

  it('filter with lists, a half-open range and a cursor that round-trips', () => {
    const f = parseEventFilter(
      {
        kind: 'log,alert',
        level: ['error', 'warning'],
        since: 'now-1h',
        until: String(NOW),
        cursor: encodeCursor(NOW - 5, 42),
        limit: '10',
      },
      NOW,
      { kind: 'kind', source: 'source', level: 'level', since: 'since', until: 'until' },
    );
    assert.deepEqual(f, {
      kinds: ['log', 'alert'],
      sources: undefined,
      levels: ['error', 'warn'],
      since: NOW - 3_600_000,
      until: NOW,
      limit: 10,
      after: { time: NOW - 5, id: 42 },
    });
    assert.throws(
      () =>
        parseEventFilter({ start_time: String(NOW), end_time: String(NOW - 1) }, NOW, {
          source: 'service',
          level: 'level',
          since: 'start_time',
          until: 'end_time',
        }),
      (err: { details: { parameter: string } }) => err.details.parameter === 'start_time',
    );
  });
});

describe('pipeline status reports', () => {
  it('name the pipeline by id, else by type, and read status aliases', () => {
    assert.equal(
      decodeStatusReport({ pipeline_type: 'data_ingestion', status: 'running' }, w).pipeline,
      'data_ingestion',
    );
    const r = decodeStatusReport(
      { pipeline_type: 'training', pipeline_id: 7, status: 'Succeeded', metadata: { epoch: 5 } },
      w,
    );
    assert.deepEqual({ p: r.pipeline, s: r.status }, { p: '7', s: 'completed' });
    const e = statusEvent({ ...r, status: 'failed' }, 'running');
    assert.deepEqual(
      { level: e.level, kind: e.kind, msg: e.message },
      { level: 'error', kind: 'pipeline_status', msg: 'pipeline 7 failed (was running)' },
    );
  });
});

describe('service status reports', () => {
  it('accept the reference body and refuse what PostgreSQL or the status set would not take', () => {
    const r = decodeServiceReport({ name: 'your-service-name', status: 'UP', endpoint: 'http://your-service:port' }, w);
    assert.deepEqual(
      { n: r.name, s: r.status, e: r.endpoint, ttl: r.ttlSeconds },
      { n: 'your-service-name', s: 'up', e: 'http://your-service:port', ttl: null },
    );
    assert.equal(
      fieldOf(() => decodeServiceReport({ name: 'a\u0000b', status: 'up' }, w)),
      'name',
    );
    assert.equal(
      fieldOf(() => decodeServiceReport({ name: 'a', status: 'degraded' }, w)),
      'status',
    );
    assert.equal(serviceEvent('api', 'unknown', 'up', 'ttl_expired', NOW).level, 'warn');
  });
});
