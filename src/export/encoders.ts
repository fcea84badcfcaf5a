import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import type { PointColumns } from './copy-decoder.js';
import type { SeriesInfo } from './point-reader.js';
import { toEpochMicros, toIsoMicros } from '../common/time.js';

/**
 * Export formats as encoders: rows in (columnar chunks plus the series they belong to), bytes out,
 * chunk by chunk, so an export of any size holds one chunk (Parquet: one row group) in memory.
 */
export const FORMATS = ['csv', 'json', 'ndjson', 'parquet'] as const;
export type ExportFormat = (typeof FORMATS)[number];

export interface ExportLayout {
  /** Include a `metric` column (exports of several metrics). */
  withMetric: boolean;
  /** Tag keys, one column each (CSV, Parquet), sorted. */
  tagKeys: string[];
}

export interface ExportEncoder {
  readonly contentType: string;
  readonly extension: string;
  begin(): Buffer;
  encode(rows: PointColumns, series: ReadonlyMap<number, SeriesInfo>): Buffer;
  end(): Buffer;
}

/** A value as JSON and CSV write it: the shortest round-trip form, `-0` included (String(-0) is "0"). */
const num = (v: number) =>
  Number.isFinite(v) ? (Object.is(v, -0) ? '-0' : String(v)) : v > 0 ? 'Infinity' : v < 0 ? '-Infinity' : 'NaN';

/**
 * A text cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, TAB, CR at its start)
 * gets a leading `'` (OWASP "CSV Injection"). Only text we did not produce (sources, tag values,
 * metric names) is neutralised: numbers and timestamps are ours and stay exact.
 */
export function neutralise(cell: string): string {
  const c = cell.charCodeAt(0);
  return c === 61 || c === 43 || c === 45 || c === 64 || c === 9 || c === 13 ? `'${cell}` : cell;
}

/** RFC 4180 quoting: a cell with a comma, quote or line break is quoted, quotes doubled. */
export function csvCell(cell: string): string {
  return /[",\r\n]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

const text = (s: string) => csvCell(neutralise(s));

/**
 * Column names, all distinct: fixed columns first, then one per tag key, named after it; a key that
 * collides with a fixed column is `tag_<key>`, prefixed again while that is some other column's
 * name (tags `value` and `tag_value`: `tag_tag_value` and `tag_value`).
 */
export function columnNames(layout: ExportLayout): string[] {
  const fixed = layout.withMetric ? ['timestamp', 'metric', 'value', 'source'] : ['timestamp', 'value', 'source'];
  const taken = new Set([...fixed, ...layout.tagKeys]);
  return [
    ...fixed,
    ...layout.tagKeys.map((k) => {
      if (!fixed.includes(k)) return k;
      let name = `tag_${k}`;
      while (taken.has(name)) name = `tag_${name}`;
      taken.add(name);
      return name;
    }),
  ];
}

class CsvEncoder implements ExportEncoder {
  readonly contentType = 'text/csv; charset=utf-8';
  readonly extension = 'csv';
  constructor(private readonly layout: ExportLayout) {}

  begin(): Buffer {
    return Buffer.from(columnNames(this.layout).map(text).join(',') + '\n');
  }

  encode(rows: PointColumns, series: ReadonlyMap<number, SeriesInfo>): Buffer {
    // The text of each series' own cells is built once per chunk, not once per row.
    const cache = new Map<number, { metric: string; rest: string }>();
    const parts: string[] = [];
    for (let i = 0; i < rows.length; i++) {
      const id = rows.seriesIds[i];
      let c = cache.get(id);
      if (!c) {
        const s = series.get(id)!;
        const tags = this.layout.tagKeys.map((k) => (s.tags[k] === undefined ? '' : text(s.tags[k])));
        c = { metric: text(s.metric), rest: [text(s.source), ...tags].join(',') };
        cache.set(id, c);
      }
      parts.push(
        this.layout.withMetric
          ? `${toIsoMicros(rows.times[i])},${c.metric},${num(rows.values[i])},${c.rest}\n`
          : `${toIsoMicros(rows.times[i])},${num(rows.values[i])},${c.rest}\n`,
      );
    }
    return Buffer.from(parts.join(''));
  }

  end(): Buffer {
    return Buffer.alloc(0);
  }
}

/** A JSON array of records (`json`) or one record per line (`ndjson`). */
class JsonEncoder implements ExportEncoder {
  readonly contentType: string;
  readonly extension: string;
  private first = true;
  constructor(private readonly lines: boolean) {
    this.contentType = lines ? 'application/x-ndjson; charset=utf-8' : 'application/json; charset=utf-8';
    this.extension = lines ? 'ndjson' : 'json';
  }

  begin(): Buffer {
    return Buffer.from(this.lines ? '' : '[');
  }

  encode(rows: PointColumns, series: ReadonlyMap<number, SeriesInfo>): Buffer {
    const cache = new Map<number, string>();
    const parts: string[] = [];
    for (let i = 0; i < rows.length; i++) {
      const id = rows.seriesIds[i];
      let rest = cache.get(id);
      if (rest === undefined) {
        const s = series.get(id)!;
        rest = `,"source":${JSON.stringify(s.source)},"tags":${JSON.stringify(s.tags)}}`;
        cache.set(id, rest);
      }
      const v = rows.values[i];
      const s = series.get(id)!;
      const record = `{"timestamp":"${toIsoMicros(rows.times[i])}","metric":${JSON.stringify(s.metric)},"value":${Number.isFinite(v) ? num(v) : 'null'}${rest}`;
      if (this.lines) parts.push(record, '\n');
      else {
        parts.push(this.first ? '\n' : ',\n', record);
        this.first = false;
      }
    }
    return Buffer.from(parts.join(''));
  }

  end(): Buffer {
    return Buffer.from(this.lines ? '' : this.first ? ']\n' : '\n]\n');
  }
}

/** A ByteWriter whose bytes are taken out after each row group, so the file never sits in memory. */
class DrainingWriter extends ByteWriter {
  drain(): Buffer {
    const out = Buffer.from(new Uint8Array(this.buffer, 0, this.index)); // a copy: the buffer is reused
    this.index = 0;
    return out;
  }
}

export const PARQUET_ROW_GROUP = 100_000;

/** Parquet (Snappy) in row groups of 100,000 rows; timestamps as microseconds since the epoch, UTC. */
class ParquetEncoder implements ExportEncoder {
  readonly contentType = 'application/vnd.apache.parquet';
  readonly extension = 'parquet';
  private readonly writer = new DrainingWriter(1 << 20);
  private parquet?: ParquetWriter;
  private n = 0;
  private times = new BigInt64Array(PARQUET_ROW_GROUP);
  /** The same memory as two 32-bit halves per value: filled without a BigInt per row. */
  private timeHalves = new Uint32Array(this.times.buffer);
  private values = new Float64Array(PARQUET_ROW_GROUP);
  private ids = new Int32Array(PARQUET_ROW_GROUP);
  private series: ReadonlyMap<number, SeriesInfo> = new Map();
  constructor(private readonly layout: ExportLayout) {}

  begin(): Buffer {
    const names = columnNames(this.layout);
    const fixed = this.layout.withMetric ? 4 : 3;
    const str = (name: string, required: boolean) => ({
      name,
      type: 'BYTE_ARRAY' as const,
      converted_type: 'UTF8' as const,
      repetition_type: required ? ('REQUIRED' as const) : ('OPTIONAL' as const),
    });
    this.parquet = new ParquetWriter({
      writer: this.writer,
      createdBy: 'timescope',
      schema: [
        { name: 'root', num_children: names.length },
        {
          name: 'timestamp',
          type: 'INT64',
          repetition_type: 'REQUIRED',
          logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
        },
        ...(this.layout.withMetric ? [str('metric', true)] : []),
        { name: 'value', type: 'DOUBLE', repetition_type: 'REQUIRED' },
        str('source', true),
        ...names.slice(fixed).map((n) => str(n, false)),
      ],
    });
    return this.writer.drain();
  }

  encode(rows: PointColumns, series: ReadonlyMap<number, SeriesInfo>): Buffer {
    this.series = series;
    const out: Buffer[] = [];
    for (let i = 0; i < rows.length; i++) {
      const us = toEpochMicros(rows.times[i]);
      const hi = Math.floor(us / 4_294_967_296);
      this.timeHalves[2 * this.n] = us - hi * 4_294_967_296; // little-endian: low half first
      this.timeHalves[2 * this.n + 1] = hi; // two's complement for times before 1970
      this.values[this.n] = rows.values[i];
      this.ids[this.n] = rows.seriesIds[i];
      if (++this.n === PARQUET_ROW_GROUP) out.push(this.flushGroup());
    }
    return Buffer.concat(out);
  }

  end(): Buffer {
    const last = this.n ? this.flushGroup() : Buffer.alloc(0);
    void this.parquet!.finish();
    return Buffer.concat([last, this.writer.drain()]);
  }

  private flushGroup(): Buffer {
    const n = this.n;
    const ids = this.ids.subarray(0, n);
    const pick = (f: (s: SeriesInfo) => string | null) => Array.from(ids, (id) => f(this.series.get(id)!));
    const names = columnNames(this.layout);
    const fixed = this.layout.withMetric ? 4 : 3;
    const columnData = [
      { name: 'timestamp', data: this.times.slice(0, n) },
      ...(this.layout.withMetric ? [{ name: 'metric', data: pick((s) => s.metric) }] : []),
      { name: 'value', data: this.values.slice(0, n) },
      { name: 'source', data: pick((s) => s.source) },
      ...this.layout.tagKeys.map((k, j) => ({ name: names[fixed + j], data: pick((s) => s.tags[k] ?? null) })),
    ];
    void this.parquet!.write({ columnData, rowGroupSize: n });
    this.n = 0;
    return this.writer.drain();
  }
}

export function encoderFor(format: ExportFormat, layout: ExportLayout): ExportEncoder {
  switch (format) {
    case 'csv':
      return new CsvEncoder(layout);
    case 'json':
      return new JsonEncoder(false);
    case 'ndjson':
      return new JsonEncoder(true);
    case 'parquet':
      return new ParquetEncoder(layout);
  }
}
