import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configWith } from '../../src/config/config.js';
import { assess, ReaderProbe, reconcileStatements } from '../../src/reader/reader-access.js';

/** The pure parts of the reader checks (src/reader): what is granted, revoked and reported for a probe. */
const clean: ReaderProbe = {
  role: 'grafana_reader',
  oid: 1,
  superuser: false,
  bypassrls: false,
  readUsage: true,
  missing: [],
  publicUsage: false,
  publicUsageDirect: false,
  exposed: [],
  directGrantSchemas: [],
  defaultGrants: [],
  settings: ['search_path=timescope_read', 'statement_timeout=30s'],
  canSeeQueries: true,
  canSignal: true,
  self: 'timescope',
};

describe('reader role checks', () => {
  it('changes nothing and reports nothing for a role set up as the README says', () => {
    assert.deepEqual(reconcileStatements(clean), []);
    assert.deepEqual(assess(clean, 30), { problems: [], warnings: [] });
  });

  it('grants the read schema and revokes what the earlier setup gave, quoting every name', () => {
    const p: ReaderProbe = {
      ...clean,
      role: 'Grafana "reader"',
      readUsage: false,
      missing: ['metrics', 'series'],
      publicUsageDirect: true,
      directGrantSchemas: ['public', '_timescaledb_internal'],
      defaultGrants: ['public:r', ':S', 'public:n', 'x:z'],
    };
    assert.deepEqual(reconcileStatements(p), [
      'GRANT USAGE ON SCHEMA "timescope_read" TO "Grafana ""reader"""',
      'GRANT SELECT ON "timescope_read"."metrics", "timescope_read"."series" TO "Grafana ""reader"""',
      'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "Grafana ""reader"""',
      'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "public" FROM "Grafana ""reader"""',
      'REVOKE ALL ON ALL TABLES IN SCHEMA "_timescaledb_internal" FROM "Grafana ""reader"""',
      'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "_timescaledb_internal" FROM "Grafana ""reader"""',
      'REVOKE ALL ON SCHEMA public FROM "Grafana ""reader"""',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA "public" REVOKE ALL ON TABLES FROM "Grafana ""reader"""',
      'ALTER DEFAULT PRIVILEGES REVOKE ALL ON SEQUENCES FROM "Grafana ""reader"""',
    ]);
  });

  it('reports what it cannot fix as problems, and what is merely worth knowing as warnings', () => {
    const { problems, warnings } = assess(
      { ...clean, exposed: ['public.settings_history'], canSignal: false, publicUsage: true, settings: [] },
      30,
    );
    assert.equal(problems.length, 2);
    assert.match(problems[0], /can read public\.settings_history/);
    assert.match(problems[1], /not enforced.*may not cancel them; run GRANT "grafana_reader" TO "timescope"/);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0], /USAGE on schema public/);
    assert.match(warnings[1], /search_path/);
    assert.deepEqual(
      assess({ ...clean, canSignal: false, canSeeQueries: false }, 0).problems,
      [],
      'READER_STATEMENT_TIMEOUT_SECONDS=0: nothing to enforce',
    );
    assert.match(assess({ ...clean, superuser: true }, 30).problems[0], /is a superuser/);
  });

  it('reads GRAFANA_READER_ROLE and the watchdog settings from the environment', () => {
    assert.deepEqual(configWith({}).reader, {
      role: 'grafana_reader',
      statementTimeoutSeconds: 30,
      watchdogIntervalMs: 5000,
    });
    assert.deepEqual(
      configWith({
        GRAFANA_READER_ROLE: 'none',
        READER_STATEMENT_TIMEOUT_SECONDS: '0',
        READER_WATCHDOG_INTERVAL_SECONDS: '1',
      }).reader,
      {
        role: undefined,
        statementTimeoutSeconds: 0,
        watchdogIntervalMs: 1000,
      },
    );
    assert.throws(() => configWith({ READER_WATCHDOG_INTERVAL_SECONDS: '0' }), /READER_WATCHDOG_INTERVAL_SECONDS/);
  });
});
