-- Asynchronous exports (GET /api/v1/export/metrics, POST /api/v1/metrics/exports): one row per
-- export with its progress, so any instance can answer for it; the file lives under EXPORT_DIR of
-- the instance that wrote it. Rows and files are removed by the export-cleanup job after
-- EXPORT_TTL_HOURS (a handful of rows, not time-series data).
CREATE TABLE exports (
  id              text PRIMARY KEY,
  status          text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
  format          text NOT NULL,
  request         jsonb NOT NULL,
  instance        text NOT NULL,
  file_name       text,
  records_count   bigint NOT NULL DEFAULT 0,
  file_size_bytes bigint,
  progress        double precision NOT NULL DEFAULT 0,
  error           text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  expires_at      timestamptz
);
CREATE INDEX exports_created ON exports (created_at DESC);
