import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * `make bench`: runs every benchmark (`dist/bench/*.bench.js`) one after the other, each in its
 * own process so one cannot disturb another's memory figures. Words among the arguments pick
 * benchmarks by name (`make bench BENCH_ARGS=ingest`); flags (`--quick`, …) are passed to each.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
// A number right after a flag is that flag's value (`--days 3`), not a benchmark's name.
const isValue = (a: string, i: number) => i > 0 && args[i - 1].startsWith('-') && /^[\d.]+$/.test(a);
const words = args.filter((a, i) => !a.startsWith('-') && !isValue(a, i));
const flags = args.filter((a, i) => a.startsWith('-') || isValue(a, i));
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => words.length === 0 || words.some((w) => f.includes(w)))
  .sort();
if (benches.length === 0) {
  console.error(`no benchmark matches ${words.join(' ')}`);
  process.exit(1);
}
let failed = 0;
for (const b of benches) {
  console.log(`\n=== ${b.replace('.bench.js', '')} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', `${here}/${b}`, ...flags], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
