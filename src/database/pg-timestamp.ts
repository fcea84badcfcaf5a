/**
 * PostgreSQL's binary `timestamptz` (binary COPY, `timestamptz_send`): a big-endian int64 of
 * microseconds since 2000-01-01 UTC. Shared by the binary COPY writer and reader and the bucket reads.
 */

/** 2000-01-01T00:00:00Z in Unix epoch ms. */
export const PG_EPOCH_MS = 946_684_800_000;
export const TWO_32 = 4_294_967_296;

/**
 * Unix epoch ms of the binary timestamptz at offset `o` of `b`, a fraction carrying the
 * microseconds; read as its high and low words. Exact within about 285 years of 2000; beyond, off
 * by at most half a double's step (16 µs in the year 9999), so a whole ms rounds back exactly
 * until about the year 148,000.
 */
export function readTimestamptzMs(b: Buffer, o: number): number {
  return (b.readInt32BE(o) * TWO_32 + b.readUInt32BE(o + 4)) / 1000 + PG_EPOCH_MS;
}
