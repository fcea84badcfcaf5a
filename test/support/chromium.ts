import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/*
 * A real Chromium (Debian's package `chromium`, driven headless by playwright-core) for the live
 * page's test. Without one that suite is skipped, saying so; TIMESCOPE_TEST_REQUIRE_CHROMIUM=1
 * (CI that installs it) makes that a failure. TIMESCOPE_TEST_CHROMIUM names another binary.
 */

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();

function find(): string {
  const given = process.env.TIMESCOPE_TEST_CHROMIUM;
  if (given) return existsSync(given) ? given : '';
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  return which('chromium') || which('chromium-browser') || which('google-chrome');
}

export const CHROMIUM = find();
/** Where a real browser must be tested (CI that installs it): fail instead of skipping. */
export const REQUIRED = process.env.TIMESCOPE_TEST_REQUIRE_CHROMIUM === '1';

const notInstalled = (what: string) =>
  `chromium is not installed (Debian/Ubuntu: apt-get install chromium): ${what} is not tested`;

/**
 * The `skip` option of a describe() that needs Chromium: false when it is installed (or required),
 * else the reason, which is also printed as `# SKIPPED: …` so that the run says it.
 */
export function chromiumSkip(what: string): false | string {
  if (!CHROMIUM) console.log(`# ${REQUIRED ? 'FAILING' : 'SKIPPED'}: ${notInstalled(what)}`);
  return CHROMIUM || REQUIRED ? false : notInstalled(what);
}

/** In a before() hook: throws when Chromium is missing (reached only when REQUIRED). */
export function requireChromium(what: string): void {
  if (!CHROMIUM) throw new Error(`${notInstalled(what)}, and TIMESCOPE_TEST_REQUIRE_CHROMIUM=1 requires it`);
}
