import { Injectable, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { principalOf } from '../auth/front-door.js';
import { invalidQuery } from '../common/errors.js';
import { floorTo, toIso } from '../common/time.js';
import { StreamConnection } from './connection.js';
import { jsonNumber, sseEvent } from './encode.js';
import { aggregate, Emission, IntervalState } from './interval-state.js';
import { parseIntervalId, parseLiveId, parseSseSpec, SseSpec } from './sse-spec.js';
import { CommittedPoint, PointEncoder, StreamHub, StreamTarget } from './stream-hub.js';
import { IndexEntry, StreamFilter } from './stream-filter.js';
import { StreamingRepository } from './streaming.repository.js';

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no', // nginx: do not buffer the stream
};
/** How far back an interval stream resumes from storage (Last-Event-ID), in intervals. */
const MAX_RESUME_BUCKETS = 1_000;
const MAX_RESUME_ROWS = 50_000;
/** Series one interval stream follows (its state is per series). */
export const MAX_INTERVAL_SERIES = 1_000;

/**
 * Every matching point as it commits; resumable from the replay ring with Last-Event-ID. The
 * replay cannot go through deliver() in one synchronous loop: the response holds all of it until
 * the next tick (writes are corked), so it would stop with a full buffer after a few hundred
 * points. Instead it reads the ring at the client's pace (StreamConnection.pace) and goes live
 * once it has reached the newest point. Points committed meanwhile are in the ring too, so
 * accept() leaves them to the replay: each point is sent once and in commit order, and nothing
 * is held for the client beyond its buffer.
 */
export class LiveTarget implements StreamTarget {
  /** Sequence number of the last point replayed; null once live. */
  private cursor: number | null = null;

  constructor(
    readonly connection: StreamConnection,
    private readonly hub: StreamHub,
    private readonly filter: StreamFilter,
  ) {}

  accept(_p: CommittedPoint, enc: PointEncoder, now: number): void {
    if (this.cursor !== null) {
      if (this.hub.ring.covers(this.cursor)) return; // replaying: the ring holds this point too
      this.fellBehind();
    }
    this.connection.deliver(enc.sseMessage(), now);
  }

  heartbeat(): void {
    this.connection.reply(': ping\n\n');
  }

  /** Replays the held points after `seq`; false (nothing sent) when the ring no longer holds them all. */
  replayAfter(seq: number): boolean {
    if (!this.hub.ring.covers(seq)) return false;
    this.cursor = seq;
    this.resume();
    return true;
  }

  /**
   * Sends held points from the cursor until the client's buffer is full (then again once it has
   * drained) or the newest point is sent (then live).
   */
  private readonly resume = (): void => {
    if (this.cursor === null || this.connection.closed) return;
    let paused = false;
    const held = this.hub.replay(this.cursor, this.filter, (p, enc) => {
      this.cursor = p.seq;
      paused = !this.connection.pace(enc.sseMessage(), this.resume);
      return !paused;
    });
    if (!held) this.fellBehind();
    else if (!paused) this.cursor = null;
  };

  /**
   * The ring moved past the replay: the client reads slower than points commit. It is told, as a
   * resume from too old an id would be, and goes on live, where the slow-client rule (skips,
   * cut-off) applies. Found at the commit that evicts the cursor, so also while the replay waits
   * on a client that stopped reading.
   */
  private fellBehind(): void {
    this.connection.reply(
      gapEvent(
        'the client read the replay more slowly than points were committed: older than the replay window (STREAM_REPLAY_POINTS) by then',
        `${this.hub.boot}.${this.cursor}`,
      ),
    );
    this.cursor = null;
  }
}

/** Tells an SSE client that points committed after `lastEventId` may not all reach it. */
function gapEvent(reason: string, lastEventId: string): string {
  return sseEvent(
    JSON.stringify({ reason, last_event_id: lastEventId, missed: 'points committed since may not all be replayed' }),
    undefined,
    'gap',
  );
}

/** Per series, the latest value or a bucket aggregate every interval. */
class IntervalTarget implements StreamTarget {
  timer?: NodeJS.Timeout;

  constructor(
    readonly connection: StreamConnection,
    readonly state: IntervalState,
    private readonly spec: SseSpec,
  ) {}

  accept(p: CommittedPoint, _enc: PointEncoder, now: number): void {
    this.state.add(p.seriesId, p.series, p.time, p.value, now);
  }

  heartbeat(): void {
    this.connection.reply(': ping\n\n');
  }

  emit(rows: readonly Emission[], id: number): void {
    const now = Date.now();
    const interval = this.spec.intervalMs! / 1000;
    for (const r of rows) {
      const s = r.series;
      const data =
        `{"metric":${JSON.stringify(s.metric)},"source":${JSON.stringify(s.source)},"tags":${JSON.stringify(s.tags)},"unit":${JSON.stringify(s.unit)},` +
        `"timestamp":"${toIso(r.time)}","value":${jsonNumber(r.value)},"aggregation":"${this.spec.aggregation}","interval":${interval}${r.count !== undefined ? `,"count":${r.count}` : ''}}`;
      if (!this.connection.deliver(sseEvent(data, String(id)), now)) return;
    }
  }
}

/**
 * GET /api/v1/metrics/stream: Server-Sent Events over the same fan-out as the WebSocket. Errors
 * (bad parameters, too many connections, database down) are answered before the stream starts,
 * with the usual envelope.
 */
@Injectable()
export class SseService {
  private readonly logger = new Logger('sse');

  constructor(
    private readonly hub: StreamHub,
    private readonly repo: StreamingRepository,
  ) {}

  async open(req: FastifyRequest, reply: FastifyReply, q: Record<string, unknown>): Promise<void> {
    // A client that hangs up while the checks below wait on the database is never admitted: its
    // 'close' has fired by then, and a connection admitted after it would hold a slot for good.
    let gone = false;
    reply.raw.once('close', () => (gone = true));
    const header = req.headers['last-event-id'];
    const spec = parseSseSpec(q, typeof header === 'string' ? header : undefined);
    const maxSeries = MAX_INTERVAL_SERIES;
    let seeds: Emission[] = [];
    if (spec.intervalMs !== null) {
      if ((await this.repo.countSeries(spec.filter, maxSeries)) > maxSeries) {
        throw invalidQuery(
          'metrics',
          `the filter matches more than ${maxSeries} series; an interval stream follows at most ${maxSeries}: narrow it with sources or tags`,
          { max_series: maxSeries },
        );
      }
      if (spec.aggregation === 'last') seeds = (await this.repo.latest(spec.filter, maxSeries)).map((r) => ({ ...r }));
    }
    const raw = reply.raw;
    if (gone || raw.destroyed) {
      reply.hijack();
      return;
    }
    const connection = this.hub.admit(
      'sse',
      `${req.ip}:${req.socket.remotePort ?? '?'}`,
      {
        bufferedAmount: () => raw.writableLength,
        send: (d, sent) => void raw.write(d, sent),
        // Shutting down (1001): end the stream after what is queued. Revoked or too slow: drop the
        // connection now, with what is queued (a client that stopped reading would otherwise keep
        // its slot and that memory until it leaves).
        close: (code) => (code === 1001 ? raw.end() : raw.destroy()),
        cork: () => raw.cork(),
        uncork: () => raw.uncork(),
      },
      (count) => sseEvent(JSON.stringify({ count, reason: 'the client did not keep up' }), undefined, 'skipped'),
      principalOf(req).keyId,
    );
    reply.hijack();
    // The headers the front door set (X-RateLimit-*) go out too: the hijacked reply writes its own head.
    const set = Object.entries(reply.getHeaders()).filter(
      (e): e is [string, string | number | string[]] => e[1] !== undefined,
    );
    raw.writeHead(200, { ...Object.fromEntries(set), ...HEADERS });
    raw.write(
      `retry: 3000\n: connected to Timescope (${spec.intervalMs === null ? 'every point' : `${spec.aggregation} every ${spec.intervalMs / 1000} s`})\n\n`,
    );
    if (spec.intervalMs === null) this.live(connection, spec, raw);
    else this.interval(connection, spec, raw, seeds);
  }

  private live(connection: StreamConnection, spec: SseSpec, raw: ServerResponse): void {
    const target = new LiveTarget(connection, this.hub, spec.filter);
    // Subscribed first: what commits during the replay reaches the target, which leaves it to the replay.
    const entry = this.hub.subscribe(spec.filter, target);
    this.attach(raw, target, entry);
    if (spec.lastEventId === null) return;
    const last = parseLiveId(spec.lastEventId);
    if (last && last.boot === this.hub.boot && target.replayAfter(last.seq)) return;
    const reason = !last
      ? 'unknown event id'
      : last.boot !== this.hub.boot
        ? 'the server restarted since'
        : 'older than the replay window (STREAM_REPLAY_POINTS)';
    connection.reply(gapEvent(reason, spec.lastEventId));
  }

  private interval(connection: StreamConnection, spec: SseSpec, raw: ServerResponse, seeds: Emission[]): void {
    const I = spec.intervalMs!;
    const state = new IntervalState(I, spec.aggregation, MAX_INTERVAL_SERIES);
    const target = new IntervalTarget(connection, state, spec);
    const entry = this.hub.subscribe(spec.filter, target);
    this.attach(raw, target, entry);
    const connectedAt = Date.now();
    const open = floorTo(connectedAt, I);
    // Aggregates: the bucket open at connect time (and, when resuming, every bucket since the last
    // one received) comes from storage, because part of it committed before this stream existed.
    let fromStorage: number | null = null;
    if (spec.aggregation === 'last') {
      for (const s of seeds) state.add(s.seriesId, s.series, s.time, s.value, connectedAt);
      target.emit(state.take(connectedAt), floorTo(connectedAt, I));
    } else {
      const resume = parseIntervalId(spec.lastEventId);
      state.closeBefore(open);
      fromStorage =
        resume !== undefined && resume < open ? Math.max(floorTo(resume, I), open - MAX_RESUME_BUCKETS * I) : open;
      if (resume !== undefined && resume < open - MAX_RESUME_BUCKETS * I) {
        connection.reply(
          sseEvent(
            JSON.stringify({
              reason: `resuming at most ${MAX_RESUME_BUCKETS} intervals back`,
              last_event_id: spec.lastEventId,
            }),
            undefined,
            'gap',
          ),
        );
      }
    }
    const grace = spec.aggregation === 'last' ? 0 : Math.min(1_000, I / 2);
    const tick = async () => {
      if (connection.closed) return;
      const end = floorTo(Date.now() - grace, I);
      try {
        if (fromStorage !== null && fromStorage < end) {
          const from = fromStorage;
          // Live state holds a bucket only from the connection on: storage serves every bucket up
          // to the one open at connect time. A first tick in that bucket's grace second (or a
          // timer a little early) reads only up to it, and it is read at the next tick.
          fromStorage = end > open ? null : end;
          const rows = await this.repo.buckets(spec.filter, from, end, I, MAX_INTERVAL_SERIES, MAX_RESUME_ROWS);
          if (rows.length === MAX_RESUME_ROWS)
            connection.reply(
              sseEvent(
                JSON.stringify({ reason: `more than ${MAX_RESUME_ROWS} stored buckets to resume; some were left out` }),
                undefined,
                'gap',
              ),
            );
          let t = NaN;
          let batch: Emission[] = [];
          const flush = () => batch.length && target.emit(batch, t + I);
          for (const r of rows) {
            if (r.time !== t) {
              flush();
              batch = [];
              t = r.time;
            }
            batch.push({
              series: r.series,
              seriesId: r.seriesId,
              time: r.time,
              value: aggregate(spec.aggregation, r),
              count: r.count,
            });
          }
          flush();
          state.closeBefore(end);
        } else {
          target.emit(state.take(end), end);
        }
      } catch (err) {
        this.logger.warn(`interval stream #${connection.id}: ${(err as Error).message}`);
        connection.reply(
          sseEvent(JSON.stringify({ reason: 'storage unavailable; retrying next interval' }), undefined, 'error'),
        );
      }
      schedule();
    };
    const schedule = () => {
      if (connection.closed) return;
      const now = Date.now();
      const next = floorTo(now - grace, I) + I + grace;
      target.timer = setTimeout(() => void tick(), Math.max(10, next - now));
    };
    schedule();
  }

  private attach(
    raw: ServerResponse,
    target: StreamTarget & { timer?: NodeJS.Timeout },
    entry: IndexEntry<StreamTarget>,
  ): void {
    this.hub.addTarget(target);
    raw.once('close', () => {
      clearTimeout(target.timer);
      target.connection.closed = true;
      this.hub.unsubscribe(entry);
      this.hub.removeTarget(target);
      this.hub.release(target.connection);
    });
  }
}
