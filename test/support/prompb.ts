import protobuf from 'protobufjs';
import snappy from 'snappyjs';

/** One series of a remote write request: labels as sent, samples as [value, ms]. */
export interface RwSeries {
  labels: Array<[string, string]>;
  /** 'stale' is Prometheus' staleness marker, NaN with the payload 0x7ff0000000000002 (written as bits: a JS array would canonicalise the NaN). */
  samples: Array<[number | 'stale', number]>;
  /** Native histogram samples (their content does not matter to Timescope). */
  histograms?: number;
}

/**
 * A prometheus.WriteRequest written field by field with protobufjs' Writer, the numbers taken from
 * the remote write 1.0 specification (not from the decoder's schema): TimeSeries = 1; labels = 1,
 * samples = 2, histograms = 4; Label name = 1, value = 2; Sample value = 1 (double), timestamp = 2 (int64).
 */
export function writeRequest(series: RwSeries[]): Uint8Array {
  const w = protobuf.Writer.create();
  for (const s of series) {
    w.uint32((1 << 3) | 2).fork();
    for (const [name, value] of s.labels)
      w.uint32((1 << 3) | 2)
        .fork()
        .uint32((1 << 3) | 2)
        .string(name)
        .uint32((2 << 3) | 2)
        .string(value)
        .ldelim();
    for (const [value, ts] of s.samples) {
      w.uint32((2 << 3) | 2)
        .fork()
        .uint32((1 << 3) | 1);
      if (value === 'stale') w.fixed64(new protobuf.util.Long(0x00000002, 0x7ff00000, true));
      else w.double(value);
      w.uint32((2 << 3) | 0)
        .int64(ts)
        .ldelim();
    }
    for (let i = 0; i < (s.histograms ?? 0); i++)
      w.uint32((4 << 3) | 2)
        .fork()
        .uint32((1 << 3) | 0)
        .uint64(3)
        .ldelim();
    w.ldelim();
  }
  return w.finish();
}

/** The body Prometheus sends: the WriteRequest, snappy block-compressed (snappyjs). */
export const remoteWriteBody = (series: RwSeries[]): Buffer =>
  Buffer.from(snappy.compress(Buffer.from(writeRequest(series))));

/** The headers Prometheus 2.x sends with it. */
export const REMOTE_WRITE_HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};
