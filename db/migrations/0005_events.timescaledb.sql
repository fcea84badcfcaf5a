-- Events: logs, policy events, pipeline status reports, service status changes and alert
-- transitions, one row each. TimescaleDB: a hypertable with 1-day chunks, so retention drops
-- whole chunks (drop_chunks), as for points.
CREATE SEQUENCE events_id_seq;
CREATE TABLE events (
  time       timestamptz NOT NULL,
  id         bigint NOT NULL DEFAULT nextval('events_id_seq'),
  kind       text NOT NULL,
  source     text,
  level      text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error', 'critical')),
  message    text NOT NULL DEFAULT '',
  attributes jsonb NOT NULL DEFAULT '{}'
);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'), create_default_indexes => false);
-- Newest first, with id as the tie-breaker of the paging cursor.
CREATE INDEX events_time ON events (time DESC, id DESC);
CREATE INDEX events_kind_time ON events (kind, time DESC, id DESC);
CREATE INDEX events_source_time ON events (source, time DESC, id DESC);
