import { Injectable } from '@nestjs/common';
import { Database } from '../database/database.js';
import { toIsoMicros } from '../common/time.js';

export interface SummaryRow {
  count: number;
  min: number | null;
  max: number | null;
  avg: number | null;
  std_dev: number | null;
  /** Parallel to the fractions asked for. */
  quantiles: number[] | null;
}

@Injectable()
export class StatisticsRepository {
  constructor(private readonly database: Database) {}

  /**
   * Exact statistics of the raw points of `ids` in [from, to), computed in PostgreSQL: one pass for
   * the moments and one sort for every percentile (`percentile_cont`, linear interpolation between
   * closest ranks, as numpy, R type 7 and simple-statistics), so no point travels to Node.
   */
  async summary(ids: readonly number[], from: number, to: number, fractions: readonly number[]): Promise<SummaryRow> {
    const r = await this.database.readPool.query<SummaryRow>(
      `SELECT count(*) AS count, min(value) AS min, max(value) AS max, avg(value) AS avg, stddev_samp(value) AS std_dev,
              percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY value) AS quantiles
       FROM points WHERE series_id = ANY($1::int[]) AND time >= $2::timestamptz AND time < $3::timestamptz`,
      [ids, toIsoMicros(from), toIsoMicros(to), fractions],
    );
    return r.rows[0];
  }
}
