import { Logger } from '@nestjs/common';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger.js';
import { ApiKeysRepository } from '../auth/api-keys.repository.js';
import { issueKey, keyView } from '../auth/api-keys.service.js';
import { parseKeySpec } from '../auth/key-spec.js';
import { ApiError } from '../common/errors.js';
import { loadConfig } from '../config/config.js';
import { Database } from '../database/database.js';
import { EmbeddedServer, useEmbeddedPostgres } from '../database/embedded.js';
import { migrate } from '../database/migrator.js';

const USAGE = `usage:
  make key                                     a new admin key (named admin, admin-2, ...)
  node dist/src/cli/key.js create [--name NAME] [--scopes read,ingest,admin] [--expires 2027-01-01T00:00:00Z]
                                  [--rate-limits ingest=60000,query=0]   (requests per minute; 0 unlimited)
  node dist/src/cli/key.js list [--all]
  node dist/src/cli/key.js revoke ID
The key is printed once on stdout (only its hash is stored); everything else goes to stderr.
Works on DATABASE_URL, or on the embedded database under DATA_DIR (also while make run is running).`;

/**
 * `make key`: API keys from the command line, for the first admin key (nobody has a key to call
 * POST /api/v1/auth/keys yet) and for recovering from a lost one. Whoever can run this can read
 * DATABASE_URL or DATA_DIR, so it needs no key itself.
 */
async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      scopes: { type: 'string' },
      expires: { type: 'string' },
      'rate-limits': { type: 'string' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'create';
  if (values.help || !['create', 'list', 'revoke'].includes(command)) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  let config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL || 'warn' });
  Logger.overrideLogger(createLogger(config));
  let embedded: EmbeddedServer | undefined;
  if (!config.databaseUrl) {
    embedded = await useEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort }); // a guest while `make run` holds it
    config = { ...config, databaseUrl: embedded.url };
  }
  const database = await Database.open(config, config.databaseUrl!);
  try {
    await database.withWriteClient((c) => migrate(c, config.timescaledb));
    const repo = new ApiKeysRepository(database);
    if (command === 'list') {
      for (const r of (await repo.list(values.all ?? false)).map(keyView)) {
        console.log(
          `${r.id}\t${r.name}\t${r.prefix}…\t${r.scopes.join(',')}\tcreated ${r.created_at}\tlast used ${r.last_used_at ?? 'never'}${r.revoked_at ? `\trevoked ${r.revoked_at}` : ''}`,
        );
      }
      return 0;
    }
    if (command === 'revoke') {
      const id = Number(positionals[1]);
      const row = Number.isSafeInteger(id) ? await repo.revokeAny(id) : undefined;
      if (!row) {
        console.error(`no live API key ${positionals[1] ?? '(give its id: node dist/src/cli/key.js list)'}`);
        return 1;
      }
      console.error(
        `revoked API key ${id} (${row.name}); running instances stop accepting it within AUTH_KEY_CACHE_SECONDS`,
      );
      return 0;
    }
    const name = values.name ?? freeName(await repo.namesLike('admin'), 'admin');
    const rateLimits = values['rate-limits']
      ? Object.fromEntries(
          values['rate-limits']
            .split(',')
            .map((kv) => kv.split('='))
            .map(([k, v]) => [k.trim(), Number(v)]),
        )
      : undefined;
    const spec = parseKeySpec({
      name,
      scopes: (values.scopes ?? 'admin').split(',').map((s) => s.trim()),
      expires_at: values.expires ?? null,
      rate_limits: rateLimits,
    });
    const key = await issueKey((k) => repo.insert(k), spec, 'cli');
    console.error(
      `API key ${key.id} "${key.name}" with scopes ${key.scopes.join(', ')} (shown once; only its hash is stored):`,
    );
    console.log(key.key);
    console.error(
      `use it as: curl -H 'Authorization: Bearer ${key.key}' http://localhost:${config.port}/api/v1/auth/whoami`,
    );
    return 0;
  } finally {
    await database.close();
    await embedded?.stop();
  }
}

function freeName(taken: Set<string>, base: string): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    const e = err as Error;
    console.error(
      err instanceof ApiError
        ? `${e.message}${err.details ? ` ${JSON.stringify(err.details)}` : ''}`
        : `make key failed: ${e?.message ?? err}`,
    );
    process.exit(1);
  },
);
