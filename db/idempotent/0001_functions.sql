-- Makes the partition of `parent` that holds time `t` (partitions are `width` wide, aligned to the
-- Unix epoch) unless it exists. Safe when several sessions race to make the same one.
CREATE OR REPLACE FUNCTION timescope_ensure_partition(parent regclass, width interval, t timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  lo   timestamptz := date_bin(width, t, timestamptz 'epoch');
  name text := parent::text || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
  IF to_regclass(name) IS NULL THEN
    BEGIN
      EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                     name, parent, lo, lo + width);
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
      NULL; -- another session made it first
    END;
  END IF;
  RETURN name;
END $$;
