-- time_bucket(interval, timestamptz) in the read schema: Grafana's TimescaleDB toggle writes
-- $__timeGroup as time_bucket('300.000s',time), and the reader has no USAGE on `public`, where
-- the extension keeps its functions. A SQL-standard body is bound when it is created (no name
-- lookup in `public` when the reader calls it) and is inlined by the planner.
CREATE OR REPLACE FUNCTION timescope_read.time_bucket(bucket_width interval, ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
BEGIN ATOMIC
  SELECT public.time_bucket(bucket_width, ts);
END;
