import { setFlagsFromString } from 'node:v8';

/**
 * V8's old generation grows to a multiple of what a full collection leaves live before the next
 * one; the multiple V8 picks (up to 4 for a small heap that it collects quickly) let the ingest
 * bench's service reach 200-270 MB RSS for a ~45 MB live heap. A fixed 1.75 holds it at 180-186 MB
 * (195 MB with every body shape in one process). 1.5 (the default until 2026-12-07) held it a
 * little lower but left so little room over the live heap that under a steady load V8 could
 * fall into a full collection every 300-400 ms (`--trace-gc`), at a third more CPU per point; 2
 * nearly never collects in full but reached 215 MB with every shape (bench/RESULTS.md, "Ingest").
 * The flag is read at each full collection, so it can be set here, before anything else is
 * loaded (main.ts imports this first); flags fixed when the heap is made (semi-space sizes)
 * cannot, and are left to V8. V8_FLAGS replaces it (empty: V8's own choice).
 */
const DEFAULT_V8_FLAGS = '--heap-growing-percent=75';

const flags = process.env.V8_FLAGS ?? DEFAULT_V8_FLAGS;
if (flags.trim() !== '') setFlagsFromString(flags);
