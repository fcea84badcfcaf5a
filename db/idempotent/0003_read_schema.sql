-- The read schema for SQL clients (Grafana's PostgreSQL datasource, psql as a read-only role):
-- views only. A reader role gets USAGE on this schema and SELECT on these views and nothing in
-- `public` (alert rules and pipelines with their webhook secrets, webhook deliveries, settings
-- history, partitions and chunks stay out of its reach). Views run with their owner's rights, so
-- reading through them needs no grant on the tables below. Timescope grants the reader role
-- (GRAFANA_READER_ROLE) what it needs here at start and checks it while it runs (src/reader).
-- Columns: exactly those the README documents; add new ones at the end (CREATE OR REPLACE VIEW).
CREATE SCHEMA IF NOT EXISTS timescope_read;
COMMENT ON SCHEMA timescope_read IS 'Timescope: read-only views for SQL clients such as Grafana (README "Grafana")';

CREATE OR REPLACE VIEW timescope_read.metrics AS
  SELECT time, metric, source, tags, unit, value, series_id FROM public.metrics;
COMMENT ON VIEW timescope_read.metrics IS 'One row per point, with its series'' metric, source, tags and unit';

DO $$
DECLARE tier text;
BEGIN
  FOREACH tier IN ARRAY ARRAY['1m', '5m', '1h', '1d'] LOOP
    EXECUTE format(
      'CREATE OR REPLACE VIEW timescope_read.%I AS
         SELECT time, metric, source, tags, unit, avg, min, max, sum, count, series_id FROM public.%I',
      'metrics_' || tier, 'metrics_' || tier);
    EXECUTE format('COMMENT ON VIEW timescope_read.%I IS %L', 'metrics_' || tier,
      'One row per series and ' || tier || ' bucket: avg, min, max, sum, count');
  END LOOP;
END $$;

CREATE OR REPLACE VIEW timescope_read.series AS
  SELECT id, metric, source, tags, unit, first_seen, last_seen FROM public.series;
COMMENT ON VIEW timescope_read.series IS 'One row per series (metric, source, tags)';

CREATE OR REPLACE VIEW timescope_read.points AS
  SELECT time, series_id, value FROM public.points;
COMMENT ON VIEW timescope_read.points IS 'Raw points: join series on series_id = series.id (or read metrics)';

CREATE OR REPLACE VIEW timescope_read.events AS
  SELECT time, id, kind, source, level, message, attributes FROM public.events;
COMMENT ON VIEW timescope_read.events IS 'Logs, policy events, pipeline and service status changes, alert transitions';
