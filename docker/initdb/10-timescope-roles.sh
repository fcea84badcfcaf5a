#!/usr/bin/env bash
# Runs once, when the TimescaleDB container initialises its data directory (after the image's own
# script has created the timescaledb extension in $POSTGRES_DB).
#  - timescope: owns the database and its schema; the service connects as this role.
#  - grafana_reader: SELECT only, also on every table and view timescope creates later.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-EOSQL
  CREATE EXTENSION IF NOT EXISTS timescaledb;
  CREATE ROLE timescope LOGIN PASSWORD '${TIMESCOPE_DB_PASSWORD}';
  CREATE ROLE grafana_reader LOGIN PASSWORD '${GRAFANA_DB_PASSWORD}';
  ALTER DATABASE "${POSTGRES_DB}" OWNER TO timescope;
  ALTER SCHEMA public OWNER TO timescope;
  GRANT CONNECT ON DATABASE "${POSTGRES_DB}" TO grafana_reader;
  GRANT USAGE ON SCHEMA public TO grafana_reader;
  ALTER DEFAULT PRIVILEGES FOR ROLE timescope IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
  ALTER ROLE grafana_reader SET statement_timeout = '30s';
EOSQL
