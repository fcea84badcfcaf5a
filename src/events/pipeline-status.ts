import { invalidRequest } from '../common/errors.js';
import { isObject, Json, jsonObject, name, Problems, text, timestamp, TimeWindow } from '../common/input.js';
import { EventLevel, KINDS, NewEvent } from './event-input.js';

/**
 * Pipeline status reports (system-monitor-integration.md "Pipeline Status Updates"):
 * `{pipeline_type, status, metadata}`, optionally naming the pipeline (`pipeline_id` or `name`)
 * and the reporting `service`. Pure.
 */

export const PIPELINE_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export type PipelineStatus = (typeof PIPELINE_STATUSES)[number];

const STATUS_ALIASES: Record<string, PipelineStatus> = {
  pending: 'pending',
  queued: 'pending',
  scheduled: 'pending',
  running: 'running',
  started: 'running',
  in_progress: 'running',
  completed: 'completed',
  complete: 'completed',
  succeeded: 'completed',
  success: 'completed',
  done: 'completed',
  failed: 'failed',
  failure: 'failed',
  error: 'failed',
  cancelled: 'cancelled',
  canceled: 'cancelled',
  aborted: 'cancelled',
};

export interface StatusReport {
  /** The pipeline's identity: `pipeline_id`, else `name`, else `pipeline_type`. */
  pipeline: string;
  pipelineType: string;
  status: PipelineStatus;
  service: string | null;
  message: string | null;
  metadata: Json;
  time: number;
}

export function decodeStatusReport(body: unknown, w: TimeWindow): StatusReport {
  if (!isObject(body)) throw invalidRequest('Request body must be a JSON object {pipeline_type, status, metadata?}');
  const p = new Problems();
  const pipelineType = name(p, body.pipeline_type, 'pipeline_type', 100);
  const rawStatus = text(p, body.status, 'status', { max: 32, required: true });
  const status =
    rawStatus === undefined
      ? undefined
      : (STATUS_ALIASES[rawStatus.toLowerCase()] ??
        p.add('status', `must be one of ${PIPELINE_STATUSES.join(', ')} (got ${JSON.stringify(rawStatus)})`));
  const idKey = body.pipeline_id !== undefined ? 'pipeline_id' : 'name';
  const rawId = typeof body[idKey] === 'number' ? String(body[idKey]) : body[idKey];
  const id = name(p, rawId, idKey, 200, false);
  const service =
    name(p, body.service ?? body.source, body.service !== undefined ? 'service' : 'source', 200, false) ?? null;
  const message = text(p, body.message, 'message', { max: 8_192 }) ?? null;
  const metadata = jsonObject(p, body.metadata, 'metadata');
  const time = timestamp(p, body.timestamp, 'timestamp', w);
  p.throwIfAny();
  return {
    pipeline: id ?? pipelineType!,
    pipelineType: pipelineType!,
    status: status!,
    service,
    message,
    metadata: metadata!,
    time: time!,
  };
}

export function statusLevel(s: PipelineStatus): EventLevel {
  return s === 'failed' ? 'error' : s === 'cancelled' ? 'warn' : 'info';
}

/** The event that records a report; `previous` is the status before it (null for a new pipeline). */
export function statusEvent(r: StatusReport, previous: PipelineStatus | null): NewEvent {
  const change = previous && previous !== r.status ? ` (was ${previous})` : '';
  return {
    time: r.time,
    kind: KINDS.pipelineStatus,
    source: r.service ?? r.pipeline,
    level: statusLevel(r.status),
    message: r.message ?? `pipeline ${r.pipeline} ${r.status}${change}`,
    attributes: {
      pipeline: r.pipeline,
      pipeline_type: r.pipelineType,
      status: r.status,
      previous_status: previous,
      metadata: r.metadata,
    },
  };
}
