-- TimescaleDB: points are a hypertable with 1-day chunks, compressed per series; rollups are
-- hierarchical continuous aggregates with real-time aggregation (fresh data is aggregated on read).
CREATE TABLE points (
  time      timestamptz NOT NULL,
  series_id integer NOT NULL,
  value     double precision NOT NULL
);
SELECT create_hypertable('points', by_range('time', INTERVAL '1 day'));
CREATE UNIQUE INDEX points_series_time ON points (series_id, time) INCLUDE (value);
ALTER TABLE points SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'time');

CREATE MATERIALIZED VIEW rollup_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
  SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, series_id,
         count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
  FROM points GROUP BY 1, 2 WITH NO DATA;
CREATE MATERIALIZED VIEW rollup_5m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
  SELECT time_bucket(INTERVAL '5 minutes', bucket) AS bucket, series_id,
         sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max
  FROM rollup_1m GROUP BY 1, 2 WITH NO DATA;
CREATE MATERIALIZED VIEW rollup_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
  SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket, series_id,
         sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max
  FROM rollup_5m GROUP BY 1, 2 WITH NO DATA;
CREATE MATERIALIZED VIEW rollup_1d WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
  SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, series_id,
         sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max
  FROM rollup_1h GROUP BY 1, 2 WITH NO DATA;
