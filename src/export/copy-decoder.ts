/**
 * Decodes PostgreSQL's binary COPY output of rows `(series_id int4, time timestamptz, value float8)`
 * into columnar typed arrays, chunk by chunk as the bytes arrive (a row may straddle two chunks).
 * No object per point: reading a million points costs tens of milliseconds in Node.
 */
import { readTimestamptzMs } from '../database/pg-timestamp.js';

const SIGNATURE_BYTES = 11; // PGCOPY\n\377\r\n\0
const ROW_BYTES = 2 + (4 + 4) + (4 + 8) + (4 + 8);

export interface PointColumns {
  seriesIds: Int32Array;
  /** Epoch ms; a fraction carries microseconds. */
  times: Float64Array;
  values: Float64Array;
  length: number;
}

export class CopyBinaryDecoder {
  private pending: Buffer = Buffer.alloc(0);
  private headerDone = false;
  private ended = false;

  /** Rows decoded from `chunk` (plus what was left over from the previous one). */
  push(chunk: Buffer): PointColumns {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let o = 0;
    if (!this.headerDone) {
      if (buf.length < SIGNATURE_BYTES + 8) {
        this.pending = buf;
        return empty();
      }
      if (buf.toString('latin1', 0, 6) !== 'PGCOPY') throw new Error('not a binary COPY stream');
      const extension = buf.readInt32BE(SIGNATURE_BYTES + 4);
      o = SIGNATURE_BYTES + 8 + extension;
      this.headerDone = true;
    }
    const capacity = Math.max(0, Math.floor((buf.length - o) / ROW_BYTES));
    const seriesIds = new Int32Array(capacity),
      times = new Float64Array(capacity),
      values = new Float64Array(capacity);
    let n = 0;
    while (buf.length - o >= 2) {
      const fields = buf.readInt16BE(o);
      if (fields === -1) {
        this.ended = true;
        o += 2;
        break;
      }
      if (fields !== 3) throw new Error(`binary COPY: expected 3 fields, got ${fields}`);
      if (buf.length - o < ROW_BYTES) break;
      // Lengths are fixed (4, 8, 8) and no column is nullable.
      seriesIds[n] = buf.readInt32BE(o + 6);
      times[n] = readTimestamptzMs(buf, o + 14);
      values[n] = buf.readDoubleBE(o + 26);
      n++;
      o += ROW_BYTES;
    }
    this.pending = o < buf.length ? Buffer.from(buf.subarray(o)) : Buffer.alloc(0);

    return {
      seriesIds: seriesIds.subarray(0, n),
      times: times.subarray(0, n),
      values: values.subarray(0, n),
      length: n,
    };
  }

  /** True once the trailer was read and nothing is left over. */
  get complete(): boolean {
    return this.ended && this.pending.length === 0;
  }
}

const empty = (): PointColumns => ({
  seriesIds: new Int32Array(0),
  times: new Float64Array(0),
  values: new Float64Array(0),
  length: 0,
});
