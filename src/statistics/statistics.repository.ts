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
    const params = [ids, toIsoMicros(from), toIsoMicros(to), fractions];
    const where = `series_id = ANY($1::int[]) AND time >= $2::timestamptz AND time < $3::timestamptz`;
    const sql = (stdDev: string) =>
      `SELECT count(*) AS count, min(value) AS min, max(value) AS max, sum(value) / count(*) AS avg, ${stdDev} AS std_dev,
              percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY value) AS quantiles
       FROM points WHERE ${where}`;
    // One connection for both tries: the pool would close a connection whose query failed.
    const client = await this.database.readPool.connect();
    let broken: Error | undefined; // released with the error, the pool closes the connection
    const row = async (text: string) => {
      try {
        return (await client.query<SummaryRow>(text, params)).rows[0];
      } catch (err) {
        throw (broken = err as Error);
      }
    };
    try {
      return await row(sql('stddev_samp(value)'));
    } catch (err) {
      // stddev_samp sums squares, which overflow a double from about 1.3e154: values that large
      // are scaled by the largest magnitude first (a second pass, only then). An overflow leaves
      // the connection sound; any other error, in either pass, gives it back broken.
      if ((err as { code?: string }).code !== '22003') throw err;
      broken = undefined;
      const scaled = sql('stddev_samp(value / (SELECT a FROM s)) * (SELECT a FROM s)');
      return await row(`WITH s AS (SELECT max(abs(value)) AS a FROM points WHERE ${where}) ${scaled}`);
    } finally {
      client.release(broken);
    }
  }
}
