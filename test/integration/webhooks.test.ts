import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { before, it } from 'node:test';
import { WebhookRequest, WebhookResponse } from '../../src/webhooks/delivery.js';
import type { Resolver } from '../../src/webhooks/url-guard.js';
import { WebhookService } from '../../src/webhooks/webhook.service.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

describeEachFlavour(
  'webhooks',
  (ctx) => {
    let service: WebhookService;
    const sent: WebhookRequest[] = [];
    let answers: WebhookResponse[] = [];
    let addresses: Record<string, string> = {};

    before(() => {
      service = ctx.t.app.get(WebhookService);
      // Stubs: no test resolves a real name or opens a socket.
      service.useResolver((async (host: string) =>
        addresses[host] ? [{ address: addresses[host], family: 4 }] : []) as Resolver);
      service.useTransport(async (req) => {
        sent.push(req);
        return answers.shift() ?? { status: 200 };
      });
    });

    const final = (id: string) =>
      waitFor(
        async () => {
          const d = await service.get(id);
          return d.status !== 'pending' && d;
        },
        10_000,
        `delivery ${id}`,
      );

    it('signs, retries with backoff and logs every attempt', async () => {
      addresses = { 'hooks.example.com': '93.184.216.34' };
      answers = [{ status: 500 }, { status: 503, retryAfterSeconds: 0 }, { status: 204 }];
      sent.length = 0;
      const d = await service.enqueue({
        subject: 'alert:1',
        event: 'alert.firing',
        url: 'https://hooks.example.com/x',
        secret: 'k3y',
        payload: { alert: 1 },
      });
      const done = await final(d.id);
      assert.equal(done.status, 'delivered');
      assert.equal(done.attempts, 3);
      assert.deepEqual(
        (done.history as Array<{ status: number }>).map((h) => h.status),
        [500, 503, 204],
      );
      assert.equal(sent.length, 3);
      const req = sent[2];
      assert.equal(req.address.address, '93.184.216.34');
      assert.equal(req.headers['x-timescope-event'], 'alert.firing');
      assert.equal(req.headers['x-timescope-delivery'], d.id);
      const [t, v1] = req.headers['x-timescope-signature'].split(',').map((p) => p.split('=')[1]);
      assert.equal(v1, createHmac('sha256', 'k3y').update(`${t}.${req.body}`).digest('hex'));
      assert.deepEqual(JSON.parse(req.body), { alert: 1 });
    });

    it('gives up after a client error or a redirect, and after WEBHOOK_MAX_ATTEMPTS', async () => {
      addresses = { 'hooks.example.com': '93.184.216.34' };
      answers = [{ status: 404 }];
      assert.equal(
        (
          await final(
            (
              await service.enqueue({
                subject: 'alert:2',
                event: 'e',
                url: 'https://hooks.example.com/gone',
                payload: {},
              })
            ).id,
          )
        ).status,
        'failed',
      );
      answers = [{ status: 302 }];
      const redirected = await final(
        (await service.enqueue({ subject: 'alert:2', event: 'e', url: 'https://hooks.example.com/moved', payload: {} }))
          .id,
      );
      assert.equal(redirected.status, 'failed');
      assert.match(String(redirected.last_error), /redirects are not followed/);
      answers = [{ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 }];
      const exhausted = await final(
        (await service.enqueue({ subject: 'alert:2', event: 'e', url: 'https://hooks.example.com/down', payload: {} }))
          .id,
      );
      assert.equal(exhausted.status, 'failed');
      assert.equal(exhausted.attempts, 3);
    });

    it('refuses internal targets at send time without opening a connection', async () => {
      sent.length = 0;
      addresses = { 'rebind.example.com': '127.0.0.1' }; // passed the save-time check, now resolves inside
      const rebound = await final(
        (await service.enqueue({ subject: 'alert:3', event: 'e', url: 'https://rebind.example.com/x', payload: {} }))
          .id,
      );
      assert.equal(rebound.status, 'refused');
      const literal = await service.enqueue({
        subject: 'alert:3',
        event: 'e',
        url: 'http://169.254.169.254/latest',
        payload: {},
      });
      assert.equal(literal.status, 'refused');
      assert.equal(sent.length, 0);
    });

    it('checks URLs at save time with a 400 naming the field', async () => {
      addresses = { 'hooks.example.com': '93.184.216.34', 'evil.example.com': '10.0.0.8' };
      assert.equal(
        await service.assertSafeUrl('https://hooks.example.com/x', 'notify.webhook'),
        'https://hooks.example.com/x',
      );
      for (const bad of ['http://evil.example.com/', 'http://127.0.0.1:5432/', 'ftp://hooks.example.com/', '']) {
        await assert.rejects(
          service.assertSafeUrl(bad, 'notify.webhook'),
          (e: { getStatus(): number; details: { field: string } }) =>
            e.getStatus() === 400 && e.details.field === 'notify.webhook',
        );
      }
    });

    it('lists deliveries without their secrets', async () => {
      const r = await ctx.t.get('/api/v1/webhooks/deliveries?subject=alert:1');
      assert.equal(r.status, 200);
      assert.equal(r.json.deliveries.length, 1);
      assert.equal(r.json.deliveries[0].signed, true);
      assert.ok(!('secret' in r.json.deliveries[0]));
      assert.ok(!r.body.includes('k3y'));
      assert.equal(
        (await ctx.t.get(`/api/v1/webhooks/deliveries/${r.json.deliveries[0].id}`)).json.status,
        'delivered',
      );
      // Ids past bigint are no delivery either (not a 422 from the database's cast).
      for (const id of ['999999', '9223372036854775808', '99999999999999999999'])
        assert.equal((await ctx.t.get(`/api/v1/webhooks/deliveries/${id}`)).status, 404, id);
      assert.equal((await ctx.t.get('/api/v1/webhooks/deliveries?status=maybe')).status, 400);
    });
  },
  { WEBHOOK_RETRY_BASE_MS: '5', WEBHOOK_RETRY_MAX_MS: '20', WEBHOOK_MAX_ATTEMPTS: '3' },
);
