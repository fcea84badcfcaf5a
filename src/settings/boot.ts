import { Logger } from '@nestjs/common';
import pg from 'pg';
import { AppConfig, settleConfig } from '../config/config.js';
import { readStoredSettings } from './settings.repository.js';
import { effectiveConfig, StoredSettings } from './settings-schema.js';

/** The environment (with defaults) each effective configuration was built from: the baseline of later changes. */
const baselines = new WeakMap<AppConfig, AppConfig>();

export function baselineOf(config: AppConfig): AppConfig | undefined {
  return baselines.get(config);
}

/**
 * Stored settings over environment over defaults, before any module is built: a setting that is
 * only read at start (the size of the write pool) then also follows PUT /api/v1/config after a
 * restart. A database that cannot be read here is left to the database module to report.
 */
export async function withStoredSettings(config: AppConfig): Promise<AppConfig> {
  let effective = config;
  if (config.databaseUrl) {
    const stored = await readOnce(config)
      .catch(() => sleep(250).then(() => readOnce(config)))
      .catch(() => ({}) as StoredSettings);
    if (Object.keys(stored).length > 0) {
      effective = effectiveConfig(config, stored);
      settleConfig(effective); // logged when the settings service adopts the same document
      new Logger('settings').log(
        `stored settings applied over the environment: ${Object.keys(stored).sort().join(', ')}`,
      );
    }
  }
  if (effective === config) effective = structuredClone(config);
  baselines.set(effective, config);
  return effective;
}

/** One short connection. A failure is retried once (a server that serves one session at a time may still be closing the last one). */
async function readOnce(config: AppConfig): Promise<StoredSettings> {
  const client = new pg.Client({
    connectionString: config.databaseUrl,
    connectionTimeoutMillis: config.db.connectTimeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await readStoredSettings(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
