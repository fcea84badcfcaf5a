import { BeforeApplicationShutdown, Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { randomBytes } from 'node:crypto';
import { ApiError, serviceUnavailable } from '../common/errors.js';
import { AppConfig } from '../config/config.js';
import { HealthService } from '../system/health.service.js';
import type { PointBatch } from '../storage/point-batch.js';
import { PointWriter } from '../storage/point-writer.js';
import { CorkGroup, Sink, StreamConnection } from './connection.js';
import { IsoClock, sseData, sseEvent, StreamSeries, TemplateCache, wsMetricUpdate } from './encode.js';
import { ReplayRing } from './replay-ring.js';
import { IndexEntry, matches, StreamFilter, SubscriptionIndex } from './stream-filter.js';

/** One committed point on its way to subscribers (one object, reused for every point). */
export interface CommittedPoint {
  series: StreamSeries;
  seriesId: number;
  time: number;
  value: number;
  seq: number;
}

/** The wire forms of the current point, each built at most once however many clients get it. */
export class PointEncoder {
  private readonly iso = new IsoClock();
  private p!: CommittedPoint;
  private ws: string | undefined;
  private sse: string | undefined;

  constructor(
    private readonly templates: TemplateCache,
    private readonly boot: string,
  ) {}

  set(p: CommittedPoint): void {
    this.p = p;
    this.ws = this.sse = undefined;
  }

  wsMessage(): string {
    return (this.ws ??= wsMetricUpdate(this.templates.get(this.p.series), this.iso.iso(this.p.time), this.p.value));
  }

  sseMessage(): string {
    return (this.sse ??= sseEvent(
      sseData(this.templates.get(this.p.series), this.iso.iso(this.p.time), this.p.value),
      `${this.boot}.${this.p.seq}`,
    ));
  }
}

/** Something that receives matching points: a WebSocket session, or an SSE stream (live or per interval). */
export interface StreamTarget {
  readonly connection: StreamConnection;
  accept(p: CommittedPoint, enc: PointEncoder, now: number): void;
  /** Called on every heartbeat; live targets use it to ping or keep the connection open. */
  heartbeat?(now: number): void;
}

/**
 * The fan-out of committed points to live streams. Fed by PointWriter.onCommit, so every ingest
 * protocol, the collector and pipelines show up live. Work happens synchronously in the commit
 * listener and never waits on a client: each subscription is found through an index on (metric,
 * source), each point is encoded once, and a client that falls behind skips updates or is cut
 * off (StreamConnection), so it cannot slow ingest or the other clients. Caps: connections
 * (STREAM_MAX_CONNECTIONS, and STREAM_MAX_CONNECTIONS_PER_KEY of one API key) and subscriptions
 * per connection (STREAM_MAX_SUBSCRIPTIONS). A stream lives no longer than its key: revoked on
 * this instance, its streams close at once; revoked elsewhere (the CLI, another instance) or
 * expired, within AUTH_KEY_CACHE_SECONDS (the keys of open streams are checked that often).
 */
@Injectable()
export class StreamHub implements BeforeApplicationShutdown, OnModuleDestroy {
  private readonly logger = new Logger('streams');
  private readonly index = new SubscriptionIndex<StreamTarget>();
  private readonly connections = new Set<StreamConnection>();
  /** Open connections per API key. */
  private readonly perKey = new Map<number, number>();
  private lastKeyCheck = Date.now();
  private checkingKeys = false;
  private readonly unlistenKeys: () => void;
  private readonly targets = new Set<StreamTarget>();
  private readonly templates = new TemplateCache();
  private readonly corks = new CorkGroup();
  /** Identifies this process in SSE event ids: ids from another process (or before a restart) cannot be replayed. */
  readonly boot = randomBytes(4).toString('hex');
  readonly encoder: PointEncoder;
  readonly ring: ReplayRing;
  private readonly point: CommittedPoint = {
    series: undefined as unknown as StreamSeries,
    seriesId: 0,
    time: 0,
    value: 0,
    seq: 0,
  };
  private readonly unlisten: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private nextConnectionId = 1;
  private lastHeartbeat = Date.now();
  private closing = false;
  readonly stats = { pointsSeen: 0, delivered: 0, refused: 0, cutOff: 0, fanOutMs: 0, batches: 0 };
  /** Connections opened and closed since start, and today's (UTC) for the monitoring API's sessions. */
  readonly sessions = {
    opened: { ws: 0, sse: 0 },
    closed: 0,
    closedMs: 0,
    day: '',
    openedToday: 0,
    closedToday: 0,
    closedTodayMs: 0,
  };

  constructor(
    writer: PointWriter,
    private readonly config: AppConfig,
    health: HealthService,
    @Optional() private readonly keys?: ApiKeysService,
  ) {
    this.ring = new ReplayRing(config.streams.replayPoints);
    this.encoder = new PointEncoder(this.templates, this.boot);
    this.unlisten = writer.onCommit((batch, ids) => this.onCommit(batch, ids));
    // Slow clients are checked every second; pings and keep-alives go every STREAM_HEARTBEAT_SECONDS.
    this.heartbeat = setInterval(() => this.beat(), Math.min(1_000, config.streams.heartbeatMs));
    this.heartbeat.unref();
    health.register('streams', () => ({ status: 'running', level: 'healthy', ...this.summary() }));
    this.unlistenKeys = keys?.onRevoked((id) => this.closeKey(id)) ?? (() => undefined);
  }

  /**
   * Opens a connection for the API key `keyId` (null when keys are off), or throws: 503 when
   * STREAM_MAX_CONNECTIONS are open, 429 when the key holds STREAM_MAX_CONNECTIONS_PER_KEY (so one
   * key cannot take every slot).
   */
  admit(
    kind: 'ws' | 'sse',
    remote: string,
    sink: Sink,
    skipNotice: (n: number) => string,
    keyId: number | null = null,
  ): StreamConnection {
    const max = this.config.streams.maxConnections;
    if (this.closing) throw serviceUnavailable('Timescope is shutting down', 5);
    if (this.connections.size >= max) {
      this.stats.refused++;
      throw serviceUnavailable(`Too many stream connections (${max}, STREAM_MAX_CONNECTIONS); retry later`, 10, {
        limit: 'STREAM_MAX_CONNECTIONS',
        max,
      });
    }
    const perKey = this.config.streams.maxConnectionsPerKey;
    if (keyId !== null && (this.perKey.get(keyId) ?? 0) >= perKey) {
      this.stats.refused++;
      throw new ApiError(
        429,
        'RATE_LIMIT_EXCEEDED',
        `This API key holds ${perKey} open streams (STREAM_MAX_CONNECTIONS_PER_KEY); close one, or use another key`,
        { limit: 'STREAM_MAX_CONNECTIONS_PER_KEY', max: perKey },
        10,
      );
    }
    const { bufferBytes, slowClientMs } = this.config.streams;
    const c = new StreamConnection(
      this.nextConnectionId++,
      kind,
      remote,
      sink,
      { bufferBytes, slowClientMs },
      skipNotice,
      (slow) => {
        this.stats.cutOff++;
        this.logger.warn(
          `${slow.kind} client ${slow.remote} (#${slow.id}) cut off: too slow (${slow.skippedTotal} updates skipped)`,
        );
      },
      this.corks,
    );
    this.connections.add(c);
    if (keyId !== null) {
      c.keyId = keyId;
      this.perKey.set(keyId, (this.perKey.get(keyId) ?? 0) + 1);
    }
    const s = this.sessions;
    s.opened[kind]++;
    this.rollDay(c.openedAt);
    s.openedToday++;
    return c;
  }

  /** Forgets a connection and every subscription of its targets. */
  release(c: StreamConnection): void {
    if (!this.connections.delete(c)) return;
    if (c.keyId !== null) {
      const n = (this.perKey.get(c.keyId) ?? 1) - 1;
      if (n > 0) this.perKey.set(c.keyId, n);
      else this.perKey.delete(c.keyId);
    }
    const now = Date.now(),
      s = this.sessions;
    s.closed++;
    s.closedMs += now - c.openedAt;
    this.rollDay(now);
    s.closedToday++;
    s.closedTodayMs += now - c.openedAt;
  }

  /** Closes the streams of a key that may no longer read (WebSocket close code 1008, policy violation). */
  closeKey(keyId: number): number {
    let n = 0;
    for (const c of [...this.connections])
      if (c.keyId === keyId && !c.closed) {
        c.close(1008, 'API key revoked or expired');
        n++;
      }
    if (n > 0)
      this.logger.log(`closed ${n} stream(s) of API key ${keyId}: revoked, expired or no longer allowed to read`);
    return n;
  }

  /**
   * Closes the streams whose key may no longer read (revoked elsewhere, expired): run by the
   * heartbeat every AUTH_KEY_CACHE_SECONDS (at least every second).
   */
  async checkKeys(): Promise<void> {
    if (!this.keys || this.perKey.size === 0 || this.checkingKeys) return;
    this.checkingKeys = true;
    try {
      const ids = [...this.perKey.keys()];
      const live = await this.keys.liveReaders(ids);
      for (const id of ids) if (!live.has(id)) this.closeKey(id);
    } catch (err) {
      // The database is away: the streams stay open, as requests with cached keys are still served.
      this.logger.debug(`could not check the keys of open streams: ${(err as Error).message}`);
    } finally {
      this.checkingKeys = false;
    }
  }

  /** Starts the day's session counts afresh when the UTC date changed. */
  private rollDay(now: number): void {
    const day = new Date(now).toISOString().slice(0, 10);
    if (day === this.sessions.day) return;
    Object.assign(this.sessions, { day, openedToday: 0, closedToday: 0, closedTodayMs: 0 });
  }

  addTarget(t: StreamTarget): void {
    this.targets.add(t);
  }

  removeTarget(t: StreamTarget): void {
    this.targets.delete(t);
  }

  subscribe(filter: StreamFilter, target: StreamTarget): IndexEntry<StreamTarget> {
    return this.index.add(filter, target);
  }

  unsubscribe(entry: IndexEntry<StreamTarget>): void {
    this.index.remove(entry);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Replays held points after `seq` that match `filter` to `fn` (which returns false to stop).
   * Returns false when the ring no longer holds everything after `seq`.
   */
  replay(seq: number, filter: StreamFilter, fn: (p: CommittedPoint, enc: PointEncoder) => boolean): boolean {
    if (!this.ring.covers(seq)) return false;
    const p: CommittedPoint = { series: undefined as unknown as StreamSeries, seriesId: 0, time: 0, value: 0, seq: 0 };
    const enc = new PointEncoder(this.templates, this.boot);
    this.ring.forEachAfter(seq, (q, series, seriesId, time, value) => {
      if (!matches(filter, series)) return true;
      p.series = series;
      p.seriesId = seriesId;
      p.time = time;
      p.value = value;
      p.seq = q;
      enc.set(p);
      return fn(p, enc);
    });
    return true;
  }

  summary() {
    const byKind = { ws: 0, sse: 0 };
    let skipped = 0;
    let queued = 0;
    for (const c of this.connections) {
      byKind[c.kind]++;
      skipped += c.skippedTotal;
      queued += c.queuedBytes();
    }
    return {
      connections: this.connections.size,
      websocket_connections: byKind.ws,
      sse_connections: byKind.sse,
      max_connections: this.config.streams.maxConnections,
      subscriptions: this.index.size,
      points_seen: this.stats.pointsSeen,
      messages_routed: this.stats.delivered,
      updates_skipped_open_connections: skipped,
      /** Memory held for clients that read slower than they are sent to. */
      queued_bytes: queued,
      clients_cut_off: this.stats.cutOff,
      connections_refused: this.stats.refused,
      fan_out_ms_total: Math.round(this.stats.fanOutMs),
      replay_window: { first_seq: this.ring.first, last_seq: this.ring.last, capacity: this.ring.capacity },
    };
  }

  private onCommit(batch: PointBatch, ids: Int32Array): void {
    const first = this.ring.push(batch, ids);
    this.stats.pointsSeen += batch.length;
    if (this.index.size === 0) return;
    const t0 = performance.now();
    const now = Date.now();
    const refs = batch.series;
    const targets = new Array<readonly StreamTarget[]>(refs.length);
    let any = false;
    for (let i = 0; i < refs.length; i++) {
      targets[i] = this.index.match(refs[i], refs[i].key);
      if (targets[i].length) any = true;
    }
    if (!any) return;
    const p = this.point,
      enc = this.encoder;
    let delivered = 0;
    for (let i = 0; i < batch.length; i++) {
      const s = batch.seriesIndex[i];
      const ts = targets[s];
      if (ts.length === 0) continue;
      p.series = refs[s];
      p.seriesId = ids[s];
      p.time = batch.times[i];
      p.value = batch.values[i];
      p.seq = first + i;
      enc.set(p);
      for (let k = 0; k < ts.length; k++) {
        ts[k].accept(p, enc, now);
        delivered++;
      }
    }
    this.corks.release();
    this.stats.delivered += delivered;
    this.stats.batches++;
    this.stats.fanOutMs += performance.now() - t0;
  }

  private beat(): void {
    const now = Date.now();
    if (this.keys && now - this.lastKeyCheck >= Math.max(1_000, this.config.auth.keyCacheMs)) {
      this.lastKeyCheck = now;
      void this.checkKeys();
    }
    const ping = now - this.lastHeartbeat >= this.config.streams.heartbeatMs - 50;
    if (ping) this.lastHeartbeat = now;
    for (const t of this.targets) {
      try {
        t.connection.check(now);
        if (ping && !t.connection.closed) t.heartbeat?.(now);
      } catch (err) {
        this.logger.debug(`heartbeat failed: ${(err as Error).message}`);
      }
    }
  }

  /** Closes every stream so that the HTTP server can stop (open SSE responses would hold it). */
  beforeApplicationShutdown(): void {
    this.closing = true;
    clearInterval(this.heartbeat);
    for (const c of [...this.connections]) c.close(1001, 'server shutting down');
  }

  onModuleDestroy(): void {
    this.unlisten();
    this.unlistenKeys();
  }
}
