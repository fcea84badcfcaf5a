import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { CHROMIUM, chromiumSkip, requireChromium } from '../support/chromium.js';
import { describeEachFlavour } from '../support/suite.js';
import type { TestApp } from '../support/app.js';
import { waitFor } from '../support/wait.js';

const MINUTE = 60_000;
const POINTS = 50;
const SPIKE_AT = 35;

/** 50 points a minute apart ending a minute before the current minute, around 20, with one spike to 95. */
async function ingestSeries(
  t: TestApp,
  metric: string,
  source: string,
): Promise<{ times: number[]; values: number[] }> {
  const now = Math.floor(Date.now() / MINUTE) * MINUTE;
  const times: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < POINTS; i++) {
    times.push(now - (POINTS - i) * MINUTE);
    values.push(i === SPIKE_AT ? 95 : 20 + ((i * 7) % 5) * 0.4);
  }
  const r = await t.post('/api/v1/metrics', {
    source,
    metrics: times.map((ts, i) => ({ name: metric, value: values[i], unit: 'ms', timestamp: ts })),
  });
  assert.equal(r.status, 200, r.body);
  return { times, values };
}

/** Everything the page says to the console, and every CSP violation it sees (recorded before its scripts run). */
function watch(page: Page) {
  const errors: string[] = [];
  const urls: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => urls.push(r.url()));
  return {
    errors,
    urls,
    async violations(): Promise<string[]> {
      return page.evaluate(() => (globalThis as any).__cspViolations as string[]);
    },
  };
}

const recordViolations = () => {
  const g = globalThis as any;
  g.__cspViolations = [];
  g.document.addEventListener('securitypolicyviolation', (e: any) =>
    g.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
  );
};

const chart = (page: Page) =>
  page.evaluate(() => {
    const g = globalThis as any;
    const el = g.document.getElementById('chart');
    const plot = g.timescopeLive.plot;
    return {
      points: el.dataset.points as string,
      anomalies: el.dataset.anomalies as string,
      live: el.dataset.live as string,
      canvas: Boolean(el.querySelector('canvas')),
      xs: plot ? (Array.from(plot.data[0]) as number[]) : [],
      ys: plot ? (Array.from(plot.data[1]) as number[]) : [],
    };
  });

/** The colour of the chart's canvas at a data point (in canvas pixels, as the page's marker is drawn). */
const pixelAt = (page: Page, ts: number, value: number) =>
  page.evaluate(
    ([x, y]) => {
      const u = (globalThis as any).timescopeLive.plot;
      const px = Math.round(u.valToPos(x, 'x', true));
      const py = Math.round(u.valToPos(y, 'y', true));
      return Array.from(u.ctx.getImageData(px, py, 1, 1).data) as number[];
    },
    [ts / 1000, value],
  );

describe('the live page in a real browser', { skip: chromiumSkip('the live page') }, () => {
  let browser: Browser;
  before(async () => {
    requireChromium('the live page');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });
  after(async () => {
    await browser?.close();
  });

  // Keys required (as everywhere but the embedded default): the page asks for one on the first 401.
  describeEachFlavour(
    'live page with keys',
    (ctx) => {
      let base: string;
      before(async () => {
        base = `http://127.0.0.1:${await ctx.t.listen()}`;
      });

      it('asks for a key, charts the chosen metric with its anomaly marked, and adds new points live', async (t) => {
        const { times, values } = await ingestSeries(ctx.t, 'req_latency', 'web-1');
        assert.equal(
          (await ctx.t.post('/api/v1/metrics', { source: 'db-1', metrics: [{ name: 'disk_io', value: 3 }] })).status,
          200,
        );
        const readKey = await ctx.t.key(['read'], 'live-page');
        const page = await browser.newPage();
        try {
          await page.addInitScript(recordViolations);
          const seen = watch(page);
          const res = await page.goto(`${base}/`);
          assert.equal(res?.status(), 200);
          // No key yet: the API answers 401 and the page asks for one.
          await page.waitForSelector('#key-form:not([hidden])');
          await page.fill('#key', readKey);
          await page.click('#key-form button[type=submit]');
          await page.waitForSelector('#metric option[value="req_latency"]', { state: 'attached' });
          assert.deepEqual(await page.$$eval('#metric option', (os) => os.map((o: any) => o.value)), [
            '',
            'disk_io',
            'req_latency',
          ]);
          assert.equal(
            await page.evaluate(() => (globalThis as any).sessionStorage.getItem('timescope.apiKey')),
            readKey,
          );

          await page.selectOption('#granularity', '1m');
          await page.selectOption('#metric', 'req_latency');
          await waitFor(
            async () => {
              const c = await chart(page);
              return c.points === String(POINTS) && c.anomalies !== '0' && c.live === 'on' && c;
            },
            20_000,
            'the chart with its anomaly, following live',
          );
          const c = await chart(page);
          assert.ok(c.canvas);
          assert.deepEqual(
            c.xs,
            times.map((t) => t / 1000),
          );
          assert.deepEqual(c.ys, values);
          assert.deepEqual(await page.$$eval('#source option', (os) => os.map((o: any) => o.value)), ['', 'web-1']);

          // The spike is the anomaly, listed and marked in red on the canvas where the spike is drawn.
          const anomalies = await page.evaluate(() => (globalThis as any).timescopeLive.anomalies);
          assert.equal(anomalies.length, 1, JSON.stringify(anomalies));
          assert.equal(Date.parse(anomalies[0].timestamp), times[SPIKE_AT]);
          assert.equal(anomalies[0].value, 95);
          assert.equal(await page.$$eval('#anomalies li', (l) => l.length), 1);
          const [r, g, b, a] = await pixelAt(page, times[SPIKE_AT], 95);
          assert.ok(r > 180 && g < 90 && b < 90 && a > 200, `marker colour at the spike: ${[r, g, b, a]}`);
          // A normal point has no marker (uPlot's own: white in a blue ring), and the line between two is blue.
          const [r1, g1] = await pixelAt(page, times[10], values[10]);
          assert.ok(!(r1 > 180 && g1 < 90), `no red marker at a normal point: ${[r1, g1]}`);
          const [r2, , b2, a2] = await pixelAt(page, (times[10] + times[11]) / 2, (values[10] + values[11]) / 2);
          assert.ok(b2 > r2 + 50 && a2 > 100, `the line between two normal points: ${[r2, b2, a2]}`);

          // A new point, in a new minute: one more bucket, at its time, drawn as it commits.
          const now = Math.floor(Date.now() / MINUTE) * MINUTE;
          const post = (ts: number, value: number) =>
            ctx.t.post('/api/v1/metrics', {
              source: 'web-1',
              metrics: [{ name: 'req_latency', value, timestamp: ts }],
            });
          const posted = Date.now();
          assert.equal((await post(now, 21)).status, 200);
          const live = await waitFor(
            async () => {
              const c = await chart(page);
              return c.points === String(POINTS + 1) && c;
            },
            10_000,
            'the new point on the chart',
          );
          // Polled every 20 ms, through the page: an upper bound of commit → SSE → fold → drawn.
          t.diagnostic(`live point on the chart ${Date.now() - posted} ms after the POST was sent`);
          assert.equal(live.xs.at(-1), now / 1000);
          assert.equal(live.ys.at(-1), 21);
          // A second point in the same minute is averaged into its bucket, as the query would.
          assert.equal((await post(now + 1000, 31)).status, 200);
          await waitFor(async () => (await chart(page)).ys.at(-1) === 26, 10_000, 'the bucket averaged');
          assert.equal((await chart(page)).points, String(POINTS + 1));
          // Other metrics' points do not reach it: a disk_io point in the next minute, then one of
          // req_latency in the same minute. The stream delivers them in commit order, so once the
          // second is drawn the first would have been too: one more bucket, holding 41 alone
          // (the two averaged, 22.5, or a bucket more, had the disk_io point been folded in).
          const next = now + MINUTE;
          assert.equal(
            (
              await ctx.t.post('/api/v1/metrics', {
                source: 'db-1',
                metrics: [{ name: 'disk_io', value: 4, timestamp: next }],
              })
            ).status,
            200,
          );
          assert.equal((await post(next, 41)).status, 200);
          const after = await waitFor(
            async () => {
              const c = await chart(page);
              return c.xs.at(-1) === next / 1000 && c;
            },
            10_000,
            'the req_latency point after the disk_io one',
          );
          assert.equal(after.points, String(POINTS + 2));
          assert.equal(after.ys.at(-1), 41);
          assert.equal(after.ys.at(-2), 26);

          assert.deepEqual(await seen.violations(), []);
          // The only console errors are the browser's notes of the 401 that made the page ask for a key.
          assert.deepEqual(
            // (and Chrome's hint about the test's own pixel reads)
            seen.errors.filter((e) => !/status of 401|willReadFrequently/.test(e)),
            [],
          );
          assert.ok(seen.errors.length >= 1, 'the 401 before the key was given');
          // The key travels in the Authorization header, never in a URL.
          assert.ok(
            seen.urls.every((u) => !/access_token|tsk_/.test(u)),
            seen.urls.join('\n'),
          );
          assert.ok(seen.urls.some((u) => u.startsWith(`${base}/api/v1/metrics/stream?`)));
          assert.ok(seen.urls.includes(`${base}/ui/uPlot.esm.js`), 'uPlot from this service, no CDN');
          assert.ok(
            seen.urls.every((u) => u.startsWith(base) || u.startsWith('data:')),
            seen.urls.join('\n'),
          );
        } finally {
          await page.close();
        }
      });
    },
    {},
    { flavours: ['postgresql'] },
  );

  // AUTH=off: no key asked; the choice is kept in the URL's fragment.
  describeEachFlavour(
    'live page without keys',
    (ctx) => {
      let base: string;
      before(async () => {
        base = `http://127.0.0.1:${await ctx.t.listen()}`;
      });

      it('works without a key, opens on the metric named in its fragment, and loses no point committed while its query runs', async () => {
        const { times } = await ingestSeries(ctx.t, 'queue_depth', 'worker-1');
        const page = await browser.newPage();
        try {
          await page.addInitScript(recordViolations);
          const seen = watch(page);
          // The chart's query is answered by the service, then held back from the page while a point commits.
          let release!: () => void;
          const held = new Promise<void>((r) => (release = r));
          let answered!: () => void;
          const queried = new Promise<void>((r) => (answered = r));
          await page.route(/\/api\/v1\/metrics\/query\/multi$/, async (route) => {
            const response = await route.fetch();
            answered();
            await held;
            await route.fulfill({ response });
          });
          await page.goto(`${base}/#metric=queue_depth&granularity=1m&aggregation=max`);
          await queried;
          await waitFor(async () => (await chart(page)).live === 'on', 10_000, 'the stream open');
          const during = Date.now();
          const r = await ctx.t.post('/api/v1/metrics', {
            source: 'worker-1',
            metrics: [{ name: 'queue_depth', value: 9, timestamp: during }],
          });
          assert.equal(r.status, 200);
          await waitFor(
            () => page.evaluate(() => (globalThis as any).timescopeLive.pending === 1),
            10_000,
            'the point held while the query is out',
          );
          release();
          const c = await waitFor(
            async () => {
              const c = await chart(page);
              return c.points === String(POINTS + 1) && c.anomalies !== '0' && c;
            },
            20_000,
            'the chart',
          );
          assert.deepEqual(
            c.xs,
            [...times, Math.floor(during / MINUTE) * MINUTE].map((t) => t / 1000),
          );
          assert.equal(c.ys.at(-1), 9);
          assert.equal(await page.$eval('#key-form', (f: any) => f.hidden), true);
          assert.equal(await page.$eval('#aggregation', (s: any) => s.value), 'max');
          // Live: another series of the metric in the same minute raises the bucket's max.
          const r2 = await ctx.t.post('/api/v1/metrics', {
            source: 'worker-2',
            metrics: [{ name: 'queue_depth', value: 12, timestamp: during }],
          });
          assert.equal(r2.status, 200);
          await waitFor(async () => (await chart(page)).ys.at(-1) === 12, 10_000, 'the live point');
          assert.equal((await chart(page)).points, String(POINTS + 1));
          assert.deepEqual(await seen.violations(), []);
          assert.deepEqual(seen.errors, []);
        } finally {
          await page.close();
        }
      });
    },
    { AUTH: 'off' },
    { flavours: ['timescaledb'] },
  );
});

// The files themselves, over HTTP (no browser needed).
describeEachFlavour(
  'live page files',
  (ctx) => {
    const get = (url: string, headers: Record<string, string> = {}) =>
      ctx.t.request('GET', url, undefined, { authorization: '', ...headers });

    it('serves the page and its files without a key, with a strict policy, validators and the right types', async () => {
      const page = await get('/');
      assert.equal(page.status, 200);
      assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
      const csp = String(page.headers['content-security-policy']);
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.doesNotMatch(csp, /unsafe|\*/);
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      assert.equal(page.headers['cache-control'], 'no-cache');
      assert.match(String(page.headers.etag), /^W\/"[\w-]+"$/);
      // No inline script or style in the page.
      assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=/i);
      for (const [file, type] of [
        ['app.js', 'text/javascript; charset=utf-8'],
        ['live.js', 'text/javascript; charset=utf-8'],
        ['style.css', 'text/css; charset=utf-8'],
        ['uPlot.esm.js', 'text/javascript; charset=utf-8'],
        ['uPlot.min.css', 'text/css; charset=utf-8'],
      ]) {
        const r = await get(`/ui/${file}`);
        assert.equal(r.status, 200, file);
        assert.equal(r.headers['content-type'], type, file);
        assert.ok(r.body.length > 100, file);
        assert.equal(r.headers['content-security-policy'], csp, file);
      }
      // Revalidation: unchanged → 304 without a body.
      const again = await get('/ui/app.js', { 'if-none-match': String((await get('/ui/app.js')).headers.etag) });
      assert.equal(again.status, 304);
      assert.equal(again.body, '');
      assert.equal((await get('/ui/app.js', { 'if-none-match': '"stale"' })).status, 200);
      const tag = String(page.headers.etag);
      assert.equal(
        (await get('/', { 'if-none-match': `"x", ${tag.slice(2)}` })).status,
        304,
        'weak comparison, in a list',
      );
      const head = await ctx.t.request('HEAD', '/', undefined, { authorization: '' });
      assert.equal(head.status, 200);
    });

    it('serves only its allowlist: other names and paths out of it are 404 in the error envelope', async () => {
      for (const url of [
        '/ui/index.html.bak',
        '/ui/..%2F..%2Fpackage.json',
        '/ui/%2e%2e%2fpackage.json',
        '/ui/uPlot.cjs.js',
        '/ui/web.module.js',
        '/ui/index.html',
        '/ui/APP.JS',
        '/ui/app.js%00',
      ]) {
        const r = await get(url);
        assert.equal(r.status, 404, `${url}: ${r.status} ${r.body}`);
        assert.equal(r.json.error.code, 'RESOURCE_NOT_FOUND', url);
      }
      // A path with real slashes matches no route: like any unknown path, it needs a key first.
      assert.equal((await get('/ui/../package.json')).status, 401);
      assert.equal((await get('/ui/x/../../package.json')).status, 401);
      // The page's routes take no body and no other method.
      assert.notEqual((await ctx.t.request('POST', '/ui/app.js', {}, { authorization: '' })).status, 200);
    });
  },
  {},
  { flavours: ['postgresql'] },
);

describeEachFlavour(
  'live page rate limit',
  (ctx) => {
    it('limits the page and its files per address like the API documents', async () => {
      let limited: any;
      for (let i = 0; i < 6 && !limited; i++) {
        const r = await ctx.t.request('GET', i % 2 ? '/' : '/ui/app.js', undefined, { authorization: '' });
        if (r.status === 429) limited = r;
        else assert.equal(r.status, 200);
      }
      assert.ok(limited, 'a 429 within 6 requests at 3 a minute');
      assert.equal(limited.json.error.code, 'RATE_LIMIT_EXCEEDED');
      assert.ok(Number(limited.headers['retry-after']) >= 1);
    });
  },
  { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_DOCS: '3' },
  { flavours: ['postgresql'] },
);
