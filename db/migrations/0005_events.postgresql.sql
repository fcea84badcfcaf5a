-- Events: logs, policy events, pipeline status reports, service status changes and alert
-- transitions, one row each. Plain PostgreSQL: range-partitioned by day like points (partitions
-- are made ahead by the partition-premake job and on demand before a write), so retention drops
-- whole partitions. A sequence, not an identity column: partitioned tables take identities only
-- from PostgreSQL 17 on.
CREATE SEQUENCE events_id_seq;
CREATE TABLE events (
  time       timestamptz NOT NULL,
  id         bigint NOT NULL DEFAULT nextval('events_id_seq'),
  kind       text NOT NULL,
  source     text,
  level      text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error', 'critical')),
  message    text NOT NULL DEFAULT '',
  attributes jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (time);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
-- Newest first, with id as the tie-breaker of the paging cursor.
CREATE INDEX events_time ON events (time DESC, id DESC);
CREATE INDEX events_kind_time ON events (kind, time DESC, id DESC);
CREATE INDEX events_source_time ON events (source, time DESC, id DESC);
