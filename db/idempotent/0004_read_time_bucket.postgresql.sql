-- time_bucket(interval, timestamptz) in the read schema on plain PostgreSQL too, so a Grafana
-- datasource with the TimescaleDB toggle on ($__timeGroup written as time_bucket('300.000s',time))
-- works on either flavour. date_bin with TimescaleDB's origin (Monday 2000-01-03) gives the same
-- buckets for widths without months or years.
CREATE OR REPLACE FUNCTION timescope_read.time_bucket(bucket_width interval, ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
  SELECT date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00');
END;
