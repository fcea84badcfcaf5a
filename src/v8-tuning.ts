import { setFlagsFromString } from 'node:v8';

/**
 * V8's old generation grows to a multiple of what a full collection leaves live before the next
 * one; the multiple V8 picks (up to 4 for a small heap that it collects quickly) let the ingest
 * bench's service hold 220-270 MB RSS for a ~45 MB live heap. A fixed 1.5 held it at 175 MB at
 * the same CPU per point (bench/ingest.bench.ts, README "Benchmarks"). The flag is read at each
 * full collection, so it can be set here, before anything else is loaded (main.ts imports this
 * first); flags fixed when the heap is made (semi-space sizes) cannot, and are left to V8.
 * V8_FLAGS replaces it (empty: V8's own choice).
 */
const DEFAULT_V8_FLAGS = '--heap-growing-percent=50';

const flags = process.env.V8_FLAGS ?? DEFAULT_V8_FLAGS;
if (flags.trim() !== '') setFlagsFromString(flags);
