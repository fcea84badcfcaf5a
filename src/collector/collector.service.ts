import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap, OnModuleInit } from '@nestjs/common';
import { hostname } from 'node:os';
import { serviceUnavailable } from '../common/errors.js';
import { toIso } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { JobsService } from '../jobs/jobs.service.js';
import { SettingsService } from '../settings/settings.service.js';
import { PointWriter } from '../storage/point-writer.js';
import { ComponentHealth, HealthService } from '../system/health.service.js';
import { Collector, collectorHealth, CollectorSettings } from './collector.js';
import { GpuSampler } from './gpu-sampler.js';
import { HostSampler } from './host-sampler.js';
import { collectorApiSystem, collectorGpus, collectorMetrics, monitoringMetrics } from './views.js';

export const PERSIST_JOB = 'collector-persist';

/**
 * The host and GPU collector in the app: samples this host every METRICS_INTERVAL_LIVE seconds into
 * the live cache and persists through the one write path every METRICS_INTERVAL_PERSIST seconds
 * (as the `collector-persist` job, so that it is listed and recorded with the other jobs).
 */
@Injectable()
export class CollectorService implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('collector');
  readonly host: string;
  readonly hostSampler = new HostSampler();
  readonly collector: Collector;
  /** The start or stop under way: switches run one after the other. */
  private switching: Promise<void> = Promise.resolve();
  private closing = false;

  constructor(
    private readonly config: AppConfig,
    private readonly writer: PointWriter,
    private readonly jobs: JobsService,
    private readonly health: HealthService,
    private readonly settings: SettingsService,
  ) {
    this.host = config.collector.hostname ?? hostname();
    const gpu = new GpuSampler(() => this.config.collector.nvidiaSmiPath);
    this.collector = new Collector({ host: this.hostSampler, gpu }, this.currentSettings(), () =>
      this.jobs.runNow(PERSIST_JOB),
    );
  }

  onModuleInit(): void {
    this.jobs.register({
      name: PERSIST_JOB,
      description: `Writes the host and GPU samples gathered since the last persist (source ${this.host}); paced by the collector, kept while the database is down`,
      every: () => this.config.collector.persistSeconds * 1000,
      perInstance: true,
      run: () => this.persist(),
    });
    this.health.register('collector', () => this.componentHealth());
    this.settings.onChange((changes) => {
      if (!changes.some((c) => c.field.startsWith('collector.') || c.field === 'storage.retention_days')) return;
      this.collector.update(this.currentSettings());
      void this.reconcile();
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    // The settings may have changed since the constructor read them (loaded at init, or polled from another instance).
    this.collector.update(this.currentSettings());
    if (!this.config.collector.enabled) this.logger.log('the host collector is off (COLLECTOR_ENABLED=false)');
    await this.reconcile();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    await this.switching;
    this.collector.stop();
    if (this.collector.buffer.size > 0) {
      // Best effort: what is still buffered goes out with the writer's own shutdown flush.
      await this.persist().catch((err: Error) => this.logger.warn(`final persist failed: ${err.message}`));
    }
  }

  async persist(): Promise<Record<string, unknown>> {
    if (!this.config.collector.enabled && this.collector.buffer.size === 0) return { points: 0, collector: 'off' };
    return this.collector.persistWith((batch) => this.writer.write(batch, 'collector'));
  }

  /** Polls now, outside the cadence (tests and tools). */
  sampleNow(): Promise<void> {
    return this.collector.pollOnce();
  }

  metrics() {
    return collectorMetrics(this.latestHost(), this.collector.latestGpu, this.host);
  }

  gpus() {
    this.ensureOn();
    return collectorGpus(this.collector.latestGpu, this.collector.samplerStates()[1], this.host);
  }

  monitoring() {
    return monitoringMetrics(this.latestHost());
  }

  /** Whether the collector is switched on (COLLECTOR_ENABLED, or collector.enabled in PUT /api/v1/config). */
  get enabled(): boolean {
    return this.config.collector.enabled;
  }

  /** collector-api.md's `system` of GET /metrics, with nulls while the collector is off or has no sample yet. */
  collectorApiSystem() {
    return collectorApiSystem(this.config.collector.enabled ? this.collector.latestHost : undefined);
  }

  /**
   * host-metrics-collector.md's `/health`: the collector's own line of GET /health and the current
   * metrics summary (null before the first sample or while the collector is off). `ok` only while
   * it samples and persists (`running`): the route answers 503 otherwise.
   */
  healthCheck(): { ok: boolean; body: Record<string, unknown> } {
    const collector = this.componentHealth();
    const ok = collector.status === 'running';
    const sampled = this.config.collector.enabled && this.collector.latestHost !== undefined;
    return {
      ok,
      body: {
        status: ok ? 'healthy' : 'unhealthy',
        collector,
        metrics: sampled ? this.metrics() : null,
      },
    };
  }

  status() {
    const b = this.collector.buffer;
    return {
      enabled: this.config.collector.enabled,
      running: this.collector.isRunning,
      host: this.host,
      interval_live_seconds: this.config.collector.liveSeconds,
      interval_persist_seconds: this.config.collector.persistSeconds,
      samplers: this.collector.samplerStates(),
      buffer: { pending_points: b.size, max_points: b.bound, dropped_points: b.dropped, refused_points: b.refused },
      ...this.collector.stats,
    };
  }

  private latestHost() {
    this.ensureOn();
    const h = this.collector.latestHost;
    if (!h) {
      const state = this.collector.samplerStates()[0];
      throw serviceUnavailable(
        `No host sample yet${state.samples === 0 && state.reason !== 'not sampled yet' ? `: ${state.reason}` : ''}`,
        Math.max(1, this.config.collector.liveSeconds),
        {
          sampler: state,
        },
      );
    }
    return h;
  }

  private ensureOn(): void {
    if (!this.config.collector.enabled) {
      throw serviceUnavailable(
        'The host collector is off (COLLECTOR_ENABLED=false, or collector.enabled in PUT /api/v1/config)',
        60,
        { setting: 'collector.enabled' },
      );
    }
  }

  /**
   * Brings the collector in line with `collector.enabled` as it is now. One switch at a time, and
   * the setting is read again after the CPU priming: one turned off meanwhile (a PUT, another
   * instance's change, a shutdown) is never started anyway.
   */
  private reconcile(): Promise<void> {
    const run = this.switching.then(() => this.switchTo());
    this.switching = run.catch((err: Error) => this.logger.warn(`collector could not be switched: ${err.message}`));
    return this.switching;
  }

  private async switchTo(): Promise<void> {
    const wanted = () => this.config.collector.enabled && !this.closing;
    if (wanted() && !this.collector.isRunning) {
      await this.hostSampler.prime();
      if (!wanted() || this.collector.isRunning) return;
      this.collector.start();
      this.logger.log(
        `sampling ${this.host} every ${this.config.collector.liveSeconds}s, persisting every ${this.config.collector.persistSeconds}s`,
      );
    } else if (!wanted() && this.collector.isRunning) {
      this.collector.stop();
      this.logger.log('the host collector is stopped');
      // What was sampled goes out now: stopping ends the persist cadence, and the buffer would
      // otherwise wait in memory until the collector is turned on again (or be lost in a crash).
      if (!this.closing && this.collector.buffer.size > 0)
        await this.persist().catch((err: Error) => this.logger.warn(`persist on stop failed: ${err.message}`));
    }
  }

  private currentSettings(): CollectorSettings {
    const c = this.config.collector;
    return {
      host: this.host,
      liveMs: c.liveSeconds * 1000,
      persistMs: c.persistSeconds * 1000,
      bufferMaxPoints: c.bufferMaxPoints,
      retentionDays: this.config.retentionDays,
    };
  }

  private componentHealth(): ComponentHealth {
    const [hostState, gpuState] = this.collector.samplerStates();
    const now = Date.now();
    const lastSample = hostState.last_sample_at;
    const { status, level } = collectorHealth({
      enabled: this.config.collector.enabled,
      cadence: this.collector.cadence,
      lastSampleAt: lastSample === null ? null : Date.parse(lastSample),
      liveMs: this.config.collector.liveSeconds * 1000,
      persistFailing: this.collector.stats.last_persist_error !== null,
      now,
    });
    if (status === 'disabled') return { status, level };
    const b = this.collector.buffer;
    return {
      status,
      level,
      host: this.host,
      last_sample: lastSample,
      last_persist: this.collector.stats.last_persist_at,
      samples_pending: b.size,
      dropped_points: b.dropped,
      last_error: hostState.reason ?? this.collector.stats.last_persist_error,
      gpu: !gpuState.available
        ? `not available: ${gpuState.reason}`
        : `${this.collector.latestGpu?.gpus.length ?? 0} GPU(s)${gpuState.reason ? `; last poll failed: ${gpuState.reason}` : ''}`,
      sampler_timeouts: hostState.timeouts + gpuState.timeouts,
      checked_at: toIso(now),
    };
  }
}
