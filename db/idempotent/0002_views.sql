-- Views that make SQL (Grafana's PostgreSQL datasource, psql) read like the API.
CREATE OR REPLACE VIEW metrics AS
  SELECT p.time, s.metric, s.source, s.tags, s.unit, p.value, p.series_id
  FROM points p JOIN series s ON s.id = p.series_id;

CREATE OR REPLACE VIEW metrics_1m AS
  SELECT r.bucket AS time, s.metric, s.source, s.tags, s.unit, r.sum / r.count AS avg, r.min, r.max, r.sum, r.count, r.series_id
  FROM rollup_1m r JOIN series s ON s.id = r.series_id;
CREATE OR REPLACE VIEW metrics_5m AS
  SELECT r.bucket AS time, s.metric, s.source, s.tags, s.unit, r.sum / r.count AS avg, r.min, r.max, r.sum, r.count, r.series_id
  FROM rollup_5m r JOIN series s ON s.id = r.series_id;
CREATE OR REPLACE VIEW metrics_1h AS
  SELECT r.bucket AS time, s.metric, s.source, s.tags, s.unit, r.sum / r.count AS avg, r.min, r.max, r.sum, r.count, r.series_id
  FROM rollup_1h r JOIN series s ON s.id = r.series_id;
CREATE OR REPLACE VIEW metrics_1d AS
  SELECT r.bucket AS time, s.metric, s.source, s.tags, s.unit, r.sum / r.count AS avg, r.min, r.max, r.sum, r.count, r.series_id
  FROM rollup_1d r JOIN series s ON s.id = r.series_id;
