import { after, before, describe } from 'node:test';
import { startApp, TestApp } from './app.js';
import { FLAVOURS, TestFlavour } from './databases.js';

/**
 * Declares the same suite once per storage flavour (plain PostgreSQL and TimescaleDB), each on
 * a fresh database with the real app. `ctx.t` is the running app inside the tests.
 */
export function describeEachFlavour(
  name: string,
  body: (ctx: { t: TestApp; flavour: TestFlavour }) => void,
  env: Record<string, string> = {},
  opts: { proxy?: boolean; flavours?: TestFlavour[]; emptyDatabase?: boolean } = {},
): void {
  for (const flavour of opts.flavours ?? FLAVOURS) {
    describe(`${name} [${flavour}]`, () => {
      const ctx = { flavour } as { t: TestApp; flavour: TestFlavour };
      before(async () => {
        ctx.t = await startApp(flavour, env, opts);
      });
      after(async () => {
        await ctx.t?.close();
        ctx.t = undefined as unknown as TestApp; // the app and its database can be collected: a worker runs many files
      });
      body(ctx);
    });
  }
}
