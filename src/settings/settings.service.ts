import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { fieldErrors, invalidQuery } from '../common/errors.js';
import { AppConfig, loadConfig, settleConfig } from '../config/config.js';
import { Database, Queryable } from '../database/database.js';
import { JobsService } from '../jobs/jobs.service.js';
import { baselineOf } from './boot.js';
import { SettingsRepository, StoredRow } from './settings.repository.js';
import {
  applyLive,
  Change,
  checkConfig,
  diffConfig,
  effectiveConfig,
  mergeStored,
  parsePatch,
  settingByPath,
  settingsDocument,
  settingSources,
  StoredSettings,
} from './settings-schema.js';

/** Jobs whose schedule a setting sets: re-armed when it changes. */
const JOB_OF_SETTING: Record<string, string> = {
  'jobs.rollup_refresh_interval': 'rollup-refresh',
  'jobs.retention_interval': 'retention',
  'jobs.partition_premake_interval': 'partition-premake',
  'jobs.compression_interval': 'compression',
};

/** How often an instance looks for changes made through another instance. */
const POLL_MS = 10_000;

export interface Actor {
  by: string;
  client: Record<string, unknown>;
}

export type SettingsListener = (changes: Change[]) => void;

/**
 * Runtime configuration: GET/PUT /api/v1/config. The running AppConfig is the effective
 * configuration (stored over environment over defaults); this service is the only one that changes
 * it after start, in place, so that every module reading it at use time follows at once.
 */
@Injectable()
export class SettingsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('settings');
  private readonly baseline: AppConfig;
  private readonly defaults = loadConfig({});
  private readonly listeners = new Set<SettingsListener>();
  private row: StoredRow = { document: {}, version: 0, updated_at: null, updated_by: null };
  private poll?: NodeJS.Timeout;

  constructor(
    private readonly config: AppConfig,
    private readonly database: Database,
    private readonly repo: SettingsRepository,
    private readonly jobs: JobsService,
  ) {
    this.baseline = baselineOf(config) ?? structuredClone(config);
  }

  async onModuleInit(): Promise<void> {
    this.adopt(await this.repo.load());
    this.poll = setInterval(() => void this.refresh(), POLL_MS);
    this.poll.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.poll);
  }

  /** Called after live settings changed (here or on another instance), with what changed. */
  onChange(listener: SettingsListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get stored(): StoredSettings {
    return this.row.document;
  }

  document() {
    const flavour = this.database.info.flavour;
    const wanted = effectiveConfig(this.baseline, this.row.document);
    const pending = diffConfig(this.config, wanted, flavour).filter((c) => settingByPath(c.field)?.apply === 'restart');
    return {
      ...settingsDocument(this.config, flavour),
      version: this.row.version,
      updated_at: this.row.updated_at?.toISOString() ?? null,
      updated_by: this.row.updated_by,
      sources: settingSources(this.row.document, this.baseline, this.defaults),
      pending_restart: Object.fromEntries(pending.map((c) => [c.field, c.after])),
    };
  }

  /** PUT: validate everything first (400 naming every bad field, nothing applied), store with history, apply. */
  async update(body: unknown, actor: Actor) {
    const flavour = this.database.info.flavour;
    const { values, problems } = parsePatch(body);
    if (problems.length > 0) {
      // Name every bad field at once: the rules between fields too, checked on the valid part of the patch.
      const after = effectiveConfig(this.baseline, mergeStored(this.row.document, values));
      throw fieldErrors([...problems, ...checkConfig(after, this.config, flavour, values)]);
    }
    let changes: Change[] = [];
    const row = await this.repo.update((current) => {
      const document = mergeStored(current.document, values);
      const before = effectiveConfig(this.baseline, current.document);
      const after = effectiveConfig(this.baseline, document);
      const bad = checkConfig(after, this.config, flavour, values);
      if (bad.length > 0) throw fieldErrors(bad);
      changes = diffConfig(before, after, flavour);
      const storedChanged = JSON.stringify(sortKeys(document)) !== JSON.stringify(sortKeys(current.document));
      if (changes.length === 0 && !storedChanged) return null;
      return { document, by: actor.by, client: actor.client, changes };
    });
    if (changes.length > 0)
      this.logger.log(
        `configuration v${row.version} by ${actor.by}: ${changes.map((c) => `${c.field} ${c.before} → ${c.after}`).join(', ')}`,
      );
    this.adopt(row);
    const doc = this.document();
    return {
      ...doc,
      changes,
      // A restart is required only where the process runs with another value than the new one:
      // putting back the value it started with (after a change still waiting for a restart) is not.
      restart_required: changes
        .filter((c) => settingByPath(c.field)?.apply === 'restart' && c.field in doc.pending_restart)
        .map((c) => c.field),
    };
  }

  async history(limitText?: string, beforeText?: string) {
    const limit = limitText === undefined ? 50 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw invalidQuery('limit', 'limit must be an integer between 1 and 1000');
    const before = beforeText === undefined ? undefined : Number(beforeText);
    if (before !== undefined && (!Number.isInteger(before) || before < 1))
      throw invalidQuery('before', 'before must be a positive version number');
    const rows = await this.repo.history(limit, before);
    return {
      history: rows.map((r) => ({
        version: r.version,
        changed_at: r.changed_at.toISOString(),
        changed_by: r.changed_by,
        client: r.client,
        changes: r.changes,
        before: r.before,
        after: r.after,
      })),
      total: rows.length,
    };
  }

  /** Picks up a change made through another instance (reading on `client` when given: a job's own connection). */
  async refresh(client?: Queryable): Promise<void> {
    try {
      if ((await this.repo.version(client)) !== this.row.version) this.adopt(await this.repo.load(client));
    } catch {
      /* the database is down: keep running on what we have */
    }
  }

  /** Makes a stored row the running configuration: live fields in place, then listeners and job schedules. */
  private adopt(row: StoredRow): void {
    const flavour = this.database.info.flavour;
    const wanted = effectiveConfig(this.baseline, row.document);
    // Stored values that no longer fit the environment (it changed since they were stored) are raised to fit, not refused.
    for (const a of settleConfig(wanted)) this.logger.warn(`${a.field} raised from ${a.from} to ${a.to}: ${a.rule}`);
    const changes = diffConfig(this.config, wanted, flavour).filter((c) => settingByPath(c.field)?.apply === 'live');
    this.row = row;
    if (changes.length === 0) return;
    applyLive(this.config, wanted);
    for (const c of changes) {
      const job = JOB_OF_SETTING[c.field];
      if (job) this.jobs.reschedule(job);
    }
    for (const l of this.listeners) {
      try {
        l(changes);
      } catch (err) {
        this.logger.warn(`settings listener failed: ${(err as Error).message}`);
      }
    }
  }
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
}
