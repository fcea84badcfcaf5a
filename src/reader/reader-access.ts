import pg from 'pg';
import type { Queryable } from '../database/database.js';

/** The schema of views SQL clients read (db/idempotent/0003_read_schema.sql). */
export const READ_SCHEMA = 'timescope_read';

/** Schemas whose relations the reader must not be able to read (Timescope's tables, partitions, chunks). */
const PRIVATE_SCHEMAS = ['public', '_timescaledb_internal'];

/** What PostgreSQL says about the reader role and about what Timescope's own role may do to it. */
export interface ReaderProbe {
  role: string;
  oid: number;
  superuser: boolean;
  bypassrls: boolean;
  /** USAGE on the read schema. */
  readUsage: boolean;
  /** Views of the read schema it cannot SELECT. */
  missing: string[];
  /** USAGE on `public` (directly or through PUBLIC: PostgreSQL's default). */
  publicUsage: boolean;
  /** USAGE on `public` granted to the role itself (Timescope revokes it). */
  publicUsageDirect: boolean;
  /** Relations in public/_timescaledb_internal it can SELECT, however, other than extension-owned ones (at most 20 named). */
  exposed: string[];
  /** Schemas where it holds privileges on relations granted to it directly (Timescope revokes them). */
  directGrantSchemas: string[];
  /** Default privileges of Timescope's role that would grant it new objects: `schema:objtype` ('' = every schema). */
  defaultGrants: string[];
  /** Its role settings (`search_path=…`, `statement_timeout=…`) in this database or all. */
  settings: string[];
  /** Timescope's role: may it see the reader's queries in pg_stat_activity, and cancel them? */
  canSeeQueries: boolean;
  canSignal: boolean;
  /** Timescope's own role (current_user). */
  self: string;
}

/** Whether the read schema exists and the role's oid, or null when there is no such role. */
export async function findReader(client: Queryable, role: string): Promise<{ schema: boolean; oid: number | null }> {
  const r = await client.query<{ schema: boolean; oid: number | null }>(
    `SELECT to_regnamespace($2) IS NOT NULL AS schema, (SELECT oid::int FROM pg_roles WHERE rolname = $1) AS oid`,
    [role, READ_SCHEMA],
  );
  return r.rows[0];
}

/** Everything the reader checks need, in one round trip (catalog reads only). */
export async function probeReader(client: Queryable, role: string): Promise<ReaderProbe | undefined> {
  const r = await client.query(
    `SELECT r.oid::int AS oid, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
       has_schema_privilege(r.oid, n.oid, 'USAGE') AS read_usage,
       ARRAY(SELECT c.relname::text FROM pg_class c
             WHERE c.relnamespace = n.oid AND c.relkind = 'v' AND NOT has_table_privilege(r.oid, c.oid, 'SELECT') ORDER BY 1) AS missing,
       has_schema_privilege(r.oid, 'public', 'USAGE') AS public_usage,
       EXISTS (SELECT 1 FROM pg_namespace p, aclexplode(coalesce(p.nspacl, acldefault('n', p.nspowner))) a
               WHERE p.nspname = 'public' AND a.grantee = r.oid) AS public_usage_direct,
       ARRAY(SELECT s.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
             WHERE s.nspname = ANY ($2) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND has_table_privilege(r.oid, c.oid, 'SELECT')
               -- TimescaleDB's own catalog tables there (job statistics, sizes) are readable by every role by its design
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY 1 LIMIT 20) AS exposed,
       ARRAY(SELECT DISTINCT s.nspname::text FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace, aclexplode(c.relacl) a
             WHERE s.nspname = ANY ($2) AND a.grantee = r.oid) AS direct_grant_schemas,
       ARRAY(SELECT DISTINCT CASE WHEN d.defaclnamespace = 0 THEN '' ELSE d.defaclnamespace::regnamespace::text END || ':' || d.defaclobjtype::text
             FROM pg_default_acl d, aclexplode(d.defaclacl) a
             WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND a.grantee = r.oid
               AND d.defaclnamespace <> n.oid) AS default_grants,
       ARRAY(SELECT unnest(s.setconfig) FROM pg_db_role_setting s
             WHERE s.setrole = r.oid AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))) AS settings,
       pg_has_role(current_user, r.oid, 'USAGE') AS member,
       pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal_backend,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS self_superuser, current_user::text AS self
     FROM pg_roles r, pg_namespace n
     WHERE r.rolname = $1 AND n.nspname = $3`,
    [role, PRIVATE_SCHEMAS, READ_SCHEMA],
  );
  const x = r.rows[0];
  if (!x) return undefined;
  return {
    role,
    oid: x.oid,
    superuser: x.superuser,
    bypassrls: x.bypassrls,
    readUsage: x.read_usage,
    missing: x.missing,
    publicUsage: x.public_usage,
    publicUsageDirect: x.public_usage_direct,
    exposed: x.exposed,
    directGrantSchemas: x.direct_grant_schemas,
    defaultGrants: x.default_grants,
    settings: x.settings,
    // pg_stat_activity shows another role's query and its start only to roles with its privileges or pg_read_all_stats.
    canSeeQueries: x.self_superuser || x.member || x.read_all_stats,
    // pg_cancel_backend: privileges of the backend's role, or pg_signal_backend; a superuser's backend only by a superuser.
    canSignal: x.superuser ? x.self_superuser : x.self_superuser || x.member || x.signal_backend,
    self: x.self,
  };
}

const DEFAULT_ACL_OBJECTS: Record<string, string> = {
  r: 'TABLES',
  S: 'SEQUENCES',
  f: 'FUNCTIONS',
  T: 'TYPES',
  n: 'SCHEMAS',
};

/**
 * The statements that bring the reader's grants to what it should have: USAGE on the read schema
 * and SELECT on its views; none of the privileges granted to it directly on Timescope's schemas,
 * nor default privileges of Timescope's role that would hand it new partitions and chunks (the
 * setup this README documented before issue 11 did both). Empty when nothing is to change.
 */
export function reconcileStatements(p: ReaderProbe): string[] {
  const role = pg.escapeIdentifier(p.role);
  const schema = pg.escapeIdentifier(READ_SCHEMA);
  const out: string[] = [];
  if (!p.readUsage) out.push(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
  if (p.missing.length > 0)
    out.push(`GRANT SELECT ON ${p.missing.map((v) => `${schema}.${pg.escapeIdentifier(v)}`).join(', ')} TO ${role}`);
  for (const s of p.directGrantSchemas) {
    out.push(`REVOKE ALL ON ALL TABLES IN SCHEMA ${pg.escapeIdentifier(s)} FROM ${role}`);
    out.push(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${pg.escapeIdentifier(s)} FROM ${role}`);
  }
  if (p.publicUsageDirect) out.push(`REVOKE ALL ON SCHEMA public FROM ${role}`);
  for (const entry of p.defaultGrants) {
    const [s, type] = [entry.slice(0, entry.lastIndexOf(':')), entry.slice(entry.lastIndexOf(':') + 1)];
    const objects = DEFAULT_ACL_OBJECTS[type];
    if (!objects || (s && objects === 'SCHEMAS')) continue;
    out.push(
      `ALTER DEFAULT PRIVILEGES${s ? ` IN SCHEMA ${pg.escapeIdentifier(s)}` : ''} REVOKE ALL ON ${objects} FROM ${role}`,
    );
  }
  return out;
}

/** What is wrong (the reader can see more than the read schema, or the limit cannot be enforced) and what is merely worth saying. */
export function assess(p: ReaderProbe, timeoutSeconds: number): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  const role = p.role;
  if (p.superuser)
    problems.push(
      `${role} is a superuser: it can read every table and lift any limit; make it an ordinary role (ALTER ROLE ${role} NOSUPERUSER)`,
    );
  else if (p.bypassrls) warnings.push(`${role} has BYPASSRLS`);
  if (!p.superuser && p.exposed.length > 0)
    problems.push(
      `${role} can read ${p.exposed.join(', ')}${p.exposed.length >= 20 ? ', …' : ''} outside ${READ_SCHEMA} (through PUBLIC or a role it is a member of, which Timescope does not revoke)`,
    );
  if (!p.readUsage || p.missing.length > 0)
    problems.push(`${role} lacks USAGE on ${READ_SCHEMA} or SELECT on ${p.missing.join(', ') || 'its views'}`);
  if (timeoutSeconds > 0 && !(p.canSeeQueries && p.canSignal))
    problems.push(
      `the statement limit of ${role} is not enforced: Timescope's role may not ${p.canSeeQueries ? '' : 'see its queries nor '}cancel them; run GRANT ${pg.escapeIdentifier(role)} TO ${pg.escapeIdentifier(p.self)} as a superuser`,
    );
  if (p.publicUsage)
    warnings.push(
      `${role} has USAGE on schema public (through PUBLIC by default): it can resolve names there but read no table; REVOKE ALL ON SCHEMA public FROM PUBLIC closes it`,
    );
  const searchPath = p.settings.find((s) => s.startsWith('search_path='));
  if (!searchPath || !searchPath.includes(READ_SCHEMA))
    warnings.push(
      `${role} has no role-level search_path with ${READ_SCHEMA}: unqualified Grafana queries (FROM metrics) will not find the views; ALTER ROLE ${pg.escapeIdentifier(role)} SET search_path = ${READ_SCHEMA}`,
    );
  return { problems, warnings };
}

export interface RunawayBackend {
  pid: number;
  state: string;
  query_start: Date | null;
  seconds: number;
  query: string;
  application_name: string;
  client_addr: string | null;
}

/** The reader's statements running longer than `limitSeconds`, and its transactions idle that long. */
export async function runawayBackends(client: Queryable, oid: number, limitSeconds: number): Promise<RunawayBackend[]> {
  const r = await client.query<RunawayBackend>(
    `SELECT pid, state, query_start,
            round(extract(epoch FROM clock_timestamp() - CASE WHEN state = 'active' THEN query_start ELSE state_change END))::int AS seconds,
            left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, application_name, host(client_addr) AS client_addr
     FROM pg_stat_activity
     WHERE usesysid = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()
       AND ((state = 'active' AND query_start < clock_timestamp() - make_interval(secs => $2))
         OR (state LIKE 'idle in transaction%' AND state_change < clock_timestamp() - make_interval(secs => $2)))
     ORDER BY pid`,
    [oid, limitSeconds],
  );
  return r.rows;
}
