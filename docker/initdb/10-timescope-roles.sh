#!/usr/bin/env bash
# Runs once, when the TimescaleDB container initialises an empty data volume (after the image's own
# script has created the timescaledb extension in $POSTGRES_DB). The same statements as the README's
# "A read-only role for an existing database", plus the owner role:
#  - timescope: owns the database and its public schema; the service connects as this role and
#    creates the timescope_read schema of views at its first start.
#  - grafana_reader: Grafana's datasource user. No USAGE on public (taken from PUBLIC too); Timescope
#    grants it USAGE on timescope_read and SELECT on its views at start (GRAFANA_READER_ROLE).
#    `statement_timeout` is only its default (it may SET it); Timescope's watchdog cancels its
#    statements past READER_STATEMENT_TIMEOUT_SECONDS, which `GRANT grafana_reader TO timescope`
#    allows (the owner role may then see and cancel the reader's queries).
# A volume initialised by an earlier version of this script granted grafana_reader SELECT on all of
# public: Timescope revokes that itself at start; the README says what else to run there.
# Passwords go through psql variables (:'name' quotes them), so any character is safe.
set -euo pipefail
: "${TIMESCOPE_DB_PASSWORD:?is required}" "${GRAFANA_DB_PASSWORD:?is required}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" -v timescope_password="$TIMESCOPE_DB_PASSWORD" -v reader_password="$GRAFANA_DB_PASSWORD" <<'EOSQL'
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE ROLE timescope LOGIN PASSWORD :'timescope_password';
ALTER DATABASE :"db" OWNER TO timescope;
ALTER SCHEMA public OWNER TO timescope;
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password' CONNECTION LIMIT 20;
GRANT CONNECT ON DATABASE :"db" TO grafana_reader;
ALTER ROLE grafana_reader SET search_path = timescope_read;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT grafana_reader TO timescope;
EOSQL
