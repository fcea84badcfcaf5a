import { Injectable, Logger } from '@nestjs/common';
import { invalidQuery } from '../common/errors.js';
import { toIsoMicros } from '../common/time.js';
import { AppConfig } from '../config/config.js';
import { PointReader } from '../export/point-reader.js';
import { QueryService } from '../query/query.service.js';
import { AnalysisRunner } from './analysis-runner.js';
import { AnomalyRequest, parseAnomalyRequest } from './anomaly-request.js';
import type { AnomalyReport } from './episodes.js';

interface SeriesToAnalyse {
  source: string | null;
  tags: Record<string, string>;
  times: Float64Array;
  values: Float64Array;
}

/**
 * POST /metrics/anomalies: selects series exactly as /metrics/query does, reads their raw points
 * (one binary COPY into typed arrays) or their buckets (through the query planner, rollups
 * included), runs the detector on each series and reports one anomaly per episode.
 */
@Injectable()
export class AnomaliesService {
  private readonly logger = new Logger('anomalies');
  private readonly runner: AnalysisRunner;

  constructor(
    private readonly queries: QueryService,
    private readonly reader: PointReader,
    private readonly config: AppConfig,
  ) {
    this.runner = new AnalysisRunner(config.analytics.anomalyWorkerMinPoints, 2);
  }

  async detect(body: unknown) {
    const t0 = performance.now();
    const req = parseAnomalyRequest(body, Date.now(), this.queries.limits);
    const ids = await this.queries.matchingSeries(req);
    const series = req.buckets ? await this.readBuckets(req, ids) : await this.readRaw(req, ids);
    const tRead = performance.now();
    const anomalies: Array<AnomalyReport & { source: string | null; tags: Record<string, string> }> = [];
    let used: Record<string, unknown> = {};
    let points = 0;
    const meta = series.map((s) => ({ source: s.source, tags: s.tags, points: s.values.length }));
    const results = await this.runner.run(
      series.map((s) => ({ times: s.times, values: s.values })),
      {
        algorithm: req.algorithm,
        sensitivity: req.sensitivity,
        seed: req.seed,
        windowMs: req.windowMs,
        trees: req.trees,
        subsample: req.subsample,
        direction: req.direction,
        minDeviation: req.minDeviation,
      },
    );
    results.forEach((a, k) => {
      points += meta[k].points;
      if (Object.keys(used).length === 0) used = a.used;
      for (const x of a.anomalies) anomalies.push({ ...x, source: meta[k].source, tags: meta[k].tags });
    });
    anomalies.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
    const analysisMs = performance.now() - t0;
    this.logger.debug(
      `${req.metric}: ${points} points of ${series.length} series, read ${(tRead - t0).toFixed(0)} ms, analysed ${(performance.now() - tRead).toFixed(0)} ms`,
    );
    return {
      metric: req.metric,
      source: req.source ?? null,
      tags: Object.fromEntries(req.tags.map((t) => [t.key, t.values.length === 1 ? t.values[0] : t.values])),
      time_range: { from: toIsoMicros(req.from), to: toIsoMicros(req.to) },
      anomalies,
      total_anomalies: anomalies.length,
      points_analyzed: points,
      series_analyzed: series.length,
      analysis_time_ms: Math.round(analysisMs * 100) / 100,
      parameters: {
        algorithm: req.algorithm,
        sensitivity: req.sensitivity,
        direction: req.direction,
        min_deviation: req.minDeviation
          ? req.minDeviation.kind === 'absolute'
            ? req.minDeviation.value
            : `${req.minDeviation.value * 100}%`
          : null,
        granularity: req.buckets?.granularity ?? null,
        aggregation: req.buckets?.aggregation ?? null,
        seed: req.seed,
        ...(series.length > 1 ? { per_series: true } : {}),
        detector: used,
      },
    };
  }

  /** Raw points, one series each, at most ANOMALY_MAX_POINTS in all. */
  private async readRaw(req: AnomalyRequest, ids: number[]): Promise<SeriesToAnalyse[]> {
    const { anomalyMaxPoints: maxPoints, anomalyMaxSeries: maxSeries } = this.config.analytics;
    if (ids.length === 0 || req.from === req.to) return [];
    if (ids.length > maxSeries) {
      throw invalidQuery(
        'metric',
        `${req.metric} matches ${ids.length} series; raw points are analysed per series, at most ${maxSeries} (ANOMALY_MAX_SERIES). Filter by source or tags, or give a granularity to analyse the aggregate`,
        { series: ids.length, max_series: maxSeries },
      );
    }
    const info = await this.reader.seriesInfo(ids);
    let times = new Float64Array(1 << 16),
      values = new Float64Array(1 << 16),
      sids = new Int32Array(1 << 16);
    let n = 0;
    for await (const chunk of this.reader.stream(ids, req.from, req.to, { order: 'series', limit: maxPoints + 1 })) {
      if (n + chunk.length > times.length) {
        const cap = Math.max(times.length * 2, n + chunk.length);
        times = grow(times, cap, n);
        values = grow(values, cap, n);
        const s = new Int32Array(cap);
        s.set(sids.subarray(0, n));
        sids = s;
      }
      times.set(chunk.times, n);
      values.set(chunk.values, n);
      sids.set(chunk.seriesIds, n);
      n += chunk.length;
    }
    if (n > maxPoints) {
      throw invalidQuery(
        'from',
        `The range holds more than ${maxPoints} points (ANOMALY_MAX_POINTS); narrow the range (from, to) or give a granularity to analyse buckets`,
        { max_points: maxPoints },
      );
    }
    const out: SeriesToAnalyse[] = [];
    for (let start = 0; start < n;) {
      let end = start;
      while (end < n && sids[end] === sids[start]) end++;
      const s = info.get(sids[start]);
      out.push({
        source: s?.source ?? null,
        tags: s?.tags ?? {},
        times: times.slice(start, end),
        values: values.slice(start, end),
      });
      start = end;
    }
    return out;
  }

  /** Buckets of all matching series together, as /metrics/query computes them (rollups included). */
  private async readBuckets(req: AnomalyRequest, ids: number[]): Promise<SeriesToAnalyse[]> {
    const b = req.buckets!;
    if (ids.length === 0 || req.from === req.to) return [];
    const { rows } = await this.queries.bucketsOf(ids, req.from, req.to, b.granularityMs, b.aggregation);
    const tags = Object.fromEntries(req.tags.filter((t) => t.values.length === 1).map((t) => [t.key, t.values[0]]));
    return [
      {
        source: req.source ?? null,
        tags,
        times: Float64Array.from(rows, (r) => r.t),
        values: Float64Array.from(rows, (r) => r.v ?? NaN),
      },
    ];
  }
}

function grow(a: Float64Array, cap: number, n: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(cap);
  b.set(a.subarray(0, n));
  return b;
}
