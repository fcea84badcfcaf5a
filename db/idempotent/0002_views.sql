-- Views that make SQL (Grafana's PostgreSQL datasource, psql) read like the API.
CREATE OR REPLACE VIEW metrics AS
  SELECT p.time, s.metric, s.source, s.tags, s.unit, p.value, p.series_id
  FROM points p JOIN series s ON s.id = p.series_id;

-- metrics_1m, metrics_5m, metrics_1h, metrics_1d: one row per series and bucket of each rollup tier.
DO $$
DECLARE tier text;
BEGIN
  FOREACH tier IN ARRAY ARRAY['1m', '5m', '1h', '1d'] LOOP
    EXECUTE format(
      'CREATE OR REPLACE VIEW %I AS
         SELECT r.bucket AS time, s.metric, s.source, s.tags, s.unit, r.sum / r.count AS avg, r.min, r.max, r.sum, r.count, r.series_id
         FROM %I r JOIN series s ON s.id = r.series_id',
      'metrics_' || tier, 'rollup_' || tier);
  END LOOP;
END $$;
