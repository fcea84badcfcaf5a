import { setFlagsFromString } from 'node:v8';

/**
 * V8's old generation grows to a multiple of what a full collection leaves live before the next
 * one; the multiple V8 picks (up to 4 for a small heap that it collects quickly) let the ingest
 * bench's service reach 220-270 MB RSS for a ~45 MB live heap. A fixed 2 holds it at 180-195 MB.
 * A fixed 1.5 (the default until 2026-12-07) held 175-188 MB but left so little room over the
 * live heap that under a steady load V8 could fall into a full collection every 300-400 ms
 * (`--trace-gc`), and the service's CPU per point rose by a third (bench/RESULTS.md, "Ingest").
 * The flag is read at each full collection, so it can be set here, before anything else is
 * loaded (main.ts imports this first); flags fixed when the heap is made (semi-space sizes)
 * cannot, and are left to V8. V8_FLAGS replaces it (empty: V8's own choice).
 */
const DEFAULT_V8_FLAGS = '--heap-growing-percent=100';

const flags = process.env.V8_FLAGS ?? DEFAULT_V8_FLAGS;
if (flags.trim() !== '') setFlagsFromString(flags);
