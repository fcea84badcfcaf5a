import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { before, it } from 'node:test';
import { AlertsService } from '../../src/alerts/alerts.service.js';
import { AlertsRepository } from '../../src/alerts/alerts.repository.js';
import { RuleEvaluator } from '../../src/alerts/rule-evaluator.service.js';
import { MAX_EVALUATION_POINTS } from '../../src/alerts/series-anomaly-detector.js';
import type { WebhookRequest } from '../../src/webhooks/delivery.js';
import type { Resolver } from '../../src/webhooks/url-guard.js';
import { WebhookService } from '../../src/webhooks/webhook.service.js';
import { prng } from '../support/fixtures.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

const S = 1000;
const iso = (ms: number) => new Date(ms).toISOString();

describeEachFlavour(
  'alerts',
  (ctx) => {
    // Fake time: evaluation runs at `now`; points are stored at times around it (in the past of the real clock).
    const T0 = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
    let now = T0;
    const sent: WebhookRequest[] = [];
    let failResolvedOnce = false;
    const dns: Record<string, string> = { 'hooks.example.com': '93.184.216.34', 'internal.example.com': '10.0.0.7' };

    before(() => {
      ctx.t.app.get(AlertsService).useClock(() => now);
      const webhooks = ctx.t.app.get(WebhookService);
      // Stubs: no test resolves a real name or opens a socket.
      webhooks.useResolver((async (host: string) =>
        dns[host] ? [{ address: dns[host], family: 4 }] : []) as Resolver);
      webhooks.useTransport(async (req) => {
        sent.push(req);
        if (failResolvedOnce && req.headers['x-timescope-event'] === 'alert.resolved') {
          failResolvedOnce = false;
          return { status: 503 };
        }
        return { status: 200 };
      });
    });

    const points = async (
      metric: string,
      source: string,
      tags: Record<string, string>,
      from: number,
      values: number[],
      step = 10 * S,
    ) => {
      const r = await ctx.t.post('/api/v1/metrics', {
        source,
        metrics: values.map((value, i) => ({ name: metric, value, tags, timestamp: iso(from + i * step) })),
      });
      assert.equal(r.status, 200, r.body);
    };
    const evaluate = async (at: number) => {
      now = at;
      return (await ctx.t.runJob('alert-evaluation')).details;
    };
    const active = async () => (await ctx.t.get('/api/v1/alerts')).json;

    it('fires a threshold alert only once the condition held for the whole duration', async () => {
      const rule = await ctx.t.post('/api/v1/monitoring/alerts/configure', {
        name: 'high_cpu',
        type: 'threshold',
        metric: 'cpu_usage',
        tags: { host: 'a' },
        condition: 'greater_than',
        threshold: 90,
        duration_seconds: 60,
        severity: 'critical',
        notify: { email: ['admin@example.com'], webhook: 'https://hooks.example.com/alerts' },
      });
      assert.equal(rule.status, 201, rule.body);
      assert.match(rule.json.webhook_secret, /^whsec_/);
      assert.equal(rule.json.recovery_seconds, 60, 'recovery defaults to the duration');
      assert.ok(rule.json.warnings[0].includes('email'));
      secret = rule.json.webhook_secret;
      ruleId = rule.json.id;
      // 50 until T0, then 95 every 10 s. host b (not selected) is always high.
      await points('cpu_usage', 'web', { host: 'a' }, T0 - 120 * S, [50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50]);
      await points('cpu_usage', 'web', { host: 'a' }, T0, Array(12).fill(95));
      await points('cpu_usage', 'web', { host: 'b' }, T0 - 120 * S, Array(24).fill(99));
      let r = await evaluate(T0 + 30 * S);
      assert.deepEqual({ fired: r.fired, pending: r.pending }, { fired: 0, pending: 1 });
      r = await evaluate(T0 + 50 * S);
      assert.equal(r.fired, 0, 'the point in force at now − 60 s is still below the threshold');
      assert.equal((await active()).active_count, 0);
      r = await evaluate(T0 + 60 * S);
      assert.equal(r.fired, 1);
      const list = await active();
      assert.deepEqual({ a: list.active_count, c: list.critical_count, w: list.warning_count }, { a: 1, c: 1, w: 0 });
      const alert = list.alerts[0];
      assert.deepEqual(
        {
          state: alert.state,
          severity: alert.severity,
          type: alert.type,
          value: alert.current_value,
          threshold: alert.threshold,
          tags: alert.tags,
          at: alert.triggered_at,
        },
        {
          state: 'firing',
          severity: 'critical',
          type: 'high_cpu',
          value: 95,
          threshold: 90,
          tags: { host: 'a' },
          at: iso(T0 + 60 * S),
        },
      );
      assert.match(alert.alert_id, /^alt_\d+$/);
      assert.match(alert.message, /cpu_usage\{source=web,host=a\} > 90 for 1m/);
      alertId = alert.id;
      assert.equal((await evaluate(T0 + 70 * S)).fired, 0, 'an active alert does not fire again');
    });

    let secret = '';
    let ruleId = 0;
    let alertId = 0;

    it('warns when a rule names a metric nothing has written, with stored names like it', async () => {
      const rule = (metric: string, name: string) =>
        ctx.t.post('/api/v1/alert-rules', {
          name,
          type: 'threshold',
          metric,
          condition: 'greater_than',
          threshold: 90,
          enabled: false,
        });
      // A stored name with fewer words in common comes after cpu_usage, though it sorts first.
      await points('aaa_usage', 'other', {}, T0 - 600 * S, [1]);
      const unknown = await rule('cpu.usage_percent', 'unknown_metric');
      assert.equal(unknown.status, 201, unknown.body);
      assert.equal(unknown.json.warnings.length, 1, unknown.body);
      assert.match(
        unknown.json.warnings[0],
        /no series of metric cpu\.usage_percent .*similar name: cpu_usage, aaa_usage \(/,
      );
      const known = await rule('cpu_usage', 'known_metric');
      assert.equal(known.status, 201, known.body);
      assert.equal(known.json.warnings, undefined, known.body);
      for (const r of [unknown, known])
        assert.equal((await ctx.t.request('DELETE', `/api/v1/alert-rules/${r.json.id}`)).status, 204);
    });

    it('sends a signed webhook on fire, and records the transition as an event', async () => {
      const req = await waitFor(() => sent.find((s) => s.headers['x-timescope-event'] === 'alert.firing'));
      assert.equal(req.address.address, '93.184.216.34');
      const [t, v1] = req.headers['x-timescope-signature'].split(',').map((p) => p.split('=')[1]);
      assert.equal(v1, createHmac('sha256', secret).update(`${t}.${req.body}`).digest('hex'));
      const body = JSON.parse(req.body);
      assert.equal(body.event, 'alert.firing');
      assert.equal(body.alert.id, alertId);
      assert.equal(body.rule.name, 'high_cpu');
      const ev = (await ctx.t.get('/api/v1/events?kind=alert')).json.events[0];
      assert.deepEqual(
        { level: ev.level, state: ev.attributes.state, id: ev.attributes.alert_id },
        { level: 'critical', state: 'firing', id: alertId },
      );
    });

    it('does not resolve on a single point back below the threshold', async () => {
      await points('cpu_usage', 'web', { host: 'a' }, T0 + 120 * S, [50, 95, 95, 95]);
      for (const at of [120, 125, 150]) assert.equal((await evaluate(T0 + at * S)).resolved, 0, `at +${at} s`);
      assert.equal((await active()).alerts[0].state, 'firing');
    });

    it('acknowledges a firing alert once', async () => {
      const r = await ctx.t.post(`/api/v1/alerts/alt_${alertId}/acknowledge`, {
        acknowledged_by: 'admin',
        notes: 'Investigating the issue',
      });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(
        { s: r.json.alert.state, by: r.json.alert.acknowledged_by, n: r.json.alert.notes },
        { s: 'acknowledged', by: 'admin', n: 'Investigating the issue' },
      );
      assert.equal(
        (await ctx.t.post(`/api/v1/monitoring/alerts/${alertId}/acknowledge`, { acknowledged_by: 'other' })).status,
        409,
      );
      assert.equal(
        (await ctx.t.post(`/api/v1/alerts/${alertId}/acknowledge`, {})).json.error.details.field,
        'acknowledged_by',
      );
      assert.equal((await ctx.t.post('/api/v1/alerts/999999/acknowledge', { acknowledged_by: 'x' })).status, 404);
      const list = await active();
      assert.deepEqual(
        { a: list.active_count, f: list.firing_count, k: list.acknowledged_count },
        { a: 1, f: 0, k: 1 },
      );
      const ev = (await ctx.t.get('/api/v1/events?kind=alert')).json.events[0];
      assert.deepEqual(
        { state: ev.attributes.state, prev: ev.attributes.previous_state, by: ev.attributes.acknowledged_by },
        { state: 'acknowledged', prev: 'firing', by: 'admin' },
      );
    });

    it('resolves once the condition stopped holding for the recovery time, and says so by webhook (retried)', async () => {
      failResolvedOnce = true;
      await points('cpu_usage', 'web', { host: 'a' }, T0 + 160 * S, Array(10).fill(40));
      assert.equal((await evaluate(T0 + 200 * S)).resolved, 0);
      assert.equal((await evaluate(T0 + 220 * S)).resolved, 1);
      assert.equal((await active()).active_count, 0);
      const done = (await ctx.t.get(`/api/v1/alerts/${alertId}`)).json;
      assert.equal(done.state, 'resolved');
      assert.equal(done.resolved_at, iso(T0 + 220 * S));
      assert.match(done.resolution, /condition cleared for 1m/);
      assert.equal(done.current_value, 40);
      await waitFor(() => sent.find((s) => s.headers['x-timescope-event'] === 'alert.resolved'));
      const log = await waitFor(async () => {
        const n = (await ctx.t.get(`/api/v1/alerts/${alertId}/notifications`)).json;
        return n.deliveries.every((d: { status: string }) => d.status === 'delivered') && n.total === 2 && n;
      });
      assert.deepEqual(log.deliveries.map((d: { event: string }) => d.event).sort(), [
        'alert.firing',
        'alert.resolved',
      ]);
      assert.ok(log.deliveries.every((d: { signed: boolean }) => d.signed));
      const resolvedDelivery = log.deliveries.find((d: { event: string }) => d.event === 'alert.resolved');
      assert.deepEqual(
        resolvedDelivery.history.map((h: { status: number }) => h.status),
        [503, 200],
        'the receiver failed once: retried with backoff',
      );
      assert.equal((await ctx.t.get('/api/v1/alerts?state=resolved')).json.alerts[0].id, alertId);
    });

    it('resolves an alert whose series went silent (no data)', async () => {
      const t1 = T0 + 600 * S;
      await points('cpu_usage', 'web', { host: 'a' }, t1, Array(10).fill(97));
      assert.equal((await evaluate(t1 + 90 * S)).fired, 1);
      const r = await evaluate(t1 + 90 * S + 6 * 60 * S);
      assert.equal(r.resolved, 1);
      const resolved = (await ctx.t.get('/api/v1/alerts?state=resolved&limit=1')).json.alerts[0];
      assert.match(resolved.resolution, /no data/);
    });

    it('fires an anomaly rule on a sustained deviation from the trailing window, not on noise', async () => {
      const rand = prng(7);
      const t2 = T0 + 1_800 * S;
      // An hour of noise around 20, then five minutes near 60.
      await points(
        'latency_ms',
        'api',
        {},
        t2 - 3_600 * S,
        Array.from({ length: 360 }, () => 20 + rand() * 2),
      );
      const rule = await ctx.t.post('/api/v1/alert-rules', {
        name: 'latency_anomaly',
        type: 'anomaly',
        metric: 'latency_ms',
        source: 'api',
        algorithm: 'mad',
        sensitivity: 0.5,
        window_seconds: 3_600,
        duration_seconds: 30,
        severity: 'warning',
      });
      assert.equal(rule.status, 201, rule.body);
      assert.equal(rule.json.webhook_secret, undefined, 'no webhook, no secret');
      assert.equal((await evaluate(t2)).fired, 0, 'noise is not an anomaly');
      await points(
        'latency_ms',
        'api',
        {},
        t2,
        Array.from({ length: 30 }, () => 60 + rand()),
      );
      assert.equal((await evaluate(t2 + 20 * S)).fired, 0, 'not yet for 30 s');
      assert.equal((await evaluate(t2 + 40 * S)).fired, 1);
      const a = (await ctx.t.get(`/api/v1/alerts?rule_id=${rule.json.id}`)).json.alerts[0];
      assert.equal(a.severity, 'warning');
      assert.match(a.message, /anomalous \(mad, sensitivity 0.5\)/);
      await points(
        'latency_ms',
        'api',
        {},
        t2 + 300 * S,
        Array.from({ length: 12 }, () => 20 + rand() * 2),
      );
      assert.equal((await evaluate(t2 + 420 * S)).resolved, 1);
    });

    it('validates rules: 400 naming the field, internal webhook targets refused, names unique', async () => {
      const base = { name: 'r', metric: 'm', condition: 'gt', threshold: 1 };
      for (const [body, field] of [
        [{ ...base, name: undefined }, 'name'],
        [{ ...base, condition: 'bigger' }, 'condition'],
        [{ ...base, threshold: '90' }, 'threshold'],
        [{ ...base, duration_seconds: -1 }, 'duration_seconds'],
        [{ ...base, severity: 'urgent' }, 'severity'],
        [{ ...base, treshold: 3 }, 'treshold'],
        [{ ...base, type: 'anomaly', condition: undefined, threshold: undefined, algorithm: 'prophet' }, 'algorithm'],
        [{ ...base, type: 'anomaly', condition: undefined, threshold: undefined, sensitivity: 2 }, 'sensitivity'],
        [{ ...base, notify: { webhook: 'http://127.0.0.1:5432/' } }, 'notify.webhook'],
        [{ ...base, notify: { webhook: 'http://[::ffff:169.254.169.254]/' } }, 'notify.webhook'],
        [{ ...base, notify: { webhook: 'https://internal.example.com/hook' } }, 'notify.webhook'],
        [{ ...base, notify: { webhook: 'file:///etc/passwd' } }, 'notify.webhook'],
        [{ ...base, notify: { webhook: 'https://hooks.example.com/', secret: 'short' } }, 'notify.secret'],
      ] as const) {
        const r = await ctx.t.post('/api/v1/alert-rules', body);
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.body}`);
        assert.equal(r.json.error.details.field, field, r.body);
      }
      assert.equal((await ctx.t.post('/api/v1/alert-rules', { ...base, name: 'high_cpu' })).status, 409);
      assert.equal((await ctx.t.get('/api/v1/alert-rules/424242')).status, 404);
    });

    it('replaces rules (configure by name, PUT by id), rotates secrets, and resolves alerts of a deleted rule', async () => {
      let r = await ctx.t.post('/api/v1/monitoring/alerts/configure', {
        name: 'high_cpu',
        metric: 'cpu_usage',
        tags: { host: 'a' },
        condition: '>',
        threshold: 80,
        duration_seconds: 0,
        notify: { webhook: 'https://hooks.example.com/alerts' },
      });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.id, ruleId);
      assert.equal(r.json.threshold, 80);
      assert.equal(r.json.webhook_secret, undefined, 'the secret is kept and not shown again');
      r = await ctx.t.request('PUT', `/api/v1/alert-rules/${ruleId}`, {
        ...r.json,
        threshold: 96,
        rotate_webhook_secret: true,
      });
      assert.equal(r.status, 200, r.body);
      assert.match(r.json.webhook_secret, /^whsec_/);
      assert.notEqual(r.json.webhook_secret, secret);
      const got = (await ctx.t.get(`/api/v1/alert-rules/${ruleId}`)).json;
      assert.equal(got.webhook_signed, true);
      assert.ok(!JSON.stringify(got).includes('whsec_'), 'secrets are never listed');
      assert.equal(got.status.error, null);
      // host a is at 40: with duration 0 and "< 50" it fires at once; deleting the rule resolves it.
      r = await ctx.t.request('PUT', `/api/v1/alert-rules/${ruleId}`, {
        name: 'high_cpu',
        metric: 'cpu_usage',
        tags: { host: 'a' },
        condition: 'lt',
        threshold: 50,
        duration_seconds: 0,
      });
      assert.equal(r.status, 200, r.body);
      assert.equal((await evaluate(T0 + 250 * S)).fired, 1);
      const firing = (await ctx.t.get(`/api/v1/alerts?rule_id=${ruleId}`)).json.alerts[0];
      assert.equal((await ctx.t.request('DELETE', `/api/v1/alert-rules/${ruleId}`)).status, 204);
      assert.equal((await ctx.t.get(`/api/v1/alerts/${firing.id}`)).json.resolution, 'rule deleted');
      assert.equal((await ctx.t.get(`/api/v1/alert-rules/${ruleId}`)).status, 404);
    });

    it('takes alerts raised by clients, counts repeats, and resolves them by hand', async () => {
      const body = {
        title: 'High CPU Usage',
        message: 'CPU usage above 90%',
        severity: 2,
        service: 'your-service-name',
      };
      let r = await ctx.t.post('/api/v1/alerts/', body);
      assert.equal(r.status, 201, r.body);
      assert.deepEqual(
        { s: r.json.alert.state, sev: r.json.alert.severity, svc: r.json.alert.service, o: r.json.alert.origin },
        { s: 'firing', sev: 'warning', svc: 'your-service-name', o: 'client' },
      );
      r = await ctx.t.post('/api/v1/alerts', { ...body, message: 'CPU usage above 95%' });
      assert.equal(r.status, 200);
      assert.equal(r.json.alert.occurrences, 2);
      assert.equal(r.json.alert.message, 'CPU usage above 95%');
      const counts = await active();
      assert.ok(counts.warning_count >= 1);
      assert.equal((await ctx.t.post('/api/v1/alerts', { ...body, severity: 5 })).json.error.details.field, 'severity');
      assert.equal((await ctx.t.post('/api/v1/alerts', { message: 'no title' })).json.error.details.field, 'title');
      r = await ctx.t.post(`/api/v1/alerts/${r.json.alert.id}/resolve`, { resolved_by: 'ops', notes: 'fixed' });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.alert.resolution, 'resolved by hand by ops: fixed');
      assert.equal((await ctx.t.post(`/api/v1/alerts/${r.json.alert.id}/resolve`, {})).status, 409);
      assert.equal((await ctx.t.get('/api/v1/alerts?state=sideways')).status, 400);
    });

    it("queues the webhook in the transition's transaction: a failed enqueue rolls the transition back, and each transition is notified once", async () => {
      const t3 = T0 + 3_000 * S;
      const rule = await ctx.t.post('/api/v1/alert-rules', {
        name: 'disk_full',
        metric: 'disk_used',
        source: 'db',
        condition: 'gt',
        threshold: 90,
        duration_seconds: 0,
        notify: { webhook: 'https://hooks.example.com/disk' },
      });
      assert.equal(rule.status, 201, rule.body);
      await points('disk_used', 'db', {}, t3, [95, 95, 95]);
      // The delivery queue refuses every row: the firing must not commit without its notification.
      await ctx.t.sql.query(
        `CREATE FUNCTION refuse_delivery() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'delivery queue unavailable'; END $$`,
      );
      await ctx.t.sql.query(
        `CREATE TRIGGER refuse_delivery BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION refuse_delivery()`,
      );
      let failed;
      try {
        failed = await evaluate(t3 + 20 * S);
      } finally {
        await ctx.t.sql.query('DROP TRIGGER refuse_delivery ON webhook_deliveries');
        await ctx.t.sql.query('DROP FUNCTION refuse_delivery()');
      }
      assert.deepEqual({ fired: failed.fired, errors: failed.errors }, { fired: 0, errors: 1 });
      const ofRule = async () =>
        (await ctx.t.get(`/api/v1/alerts?rule_id=${rule.json.id}&state=all`)).json.alerts as Array<{
          id: number;
          state: string;
        }>;
      assert.deepEqual(await ofRule(), [], 'no alert without its notification');
      assert.match(
        (await ctx.t.get(`/api/v1/alert-rules/${rule.json.id}`)).json.status.error,
        /delivery queue unavailable/,
      );

      // Two evaluations at once (two instances, or a manual trigger during the job): one alert, one event, one delivery per transition.
      const evaluator = ctx.t.app.get(RuleEvaluator);
      now = t3 + 20 * S;
      const fired = await Promise.all([evaluator.evaluateAll(), evaluator.evaluateAll()]);
      assert.equal(fired[0].fired + fired[1].fired, 1);
      await points('disk_used', 'db', {}, t3 + 30 * S, [50, 50]);
      now = t3 + 40 * S;
      const resolved = await Promise.all([evaluator.evaluateAll(), evaluator.evaluateAll()]);
      assert.equal(resolved[0].resolved + resolved[1].resolved, 1);
      const [alert, ...others] = await ofRule();
      assert.equal(others.length, 0);
      assert.equal(alert.state, 'resolved');
      const events = (await ctx.t.get('/api/v1/events?kind=alert&since=now-1d&limit=1000')).json.events.filter(
        (e: { attributes: { alert_id: number } }) => e.attributes.alert_id === alert.id,
      );
      assert.deepEqual(events.map((e: { attributes: { state: string } }) => e.attributes.state).sort(), [
        'firing',
        'resolved',
      ]);
      const log = await waitFor(async () => {
        const n = (await ctx.t.get(`/api/v1/alerts/${alert.id}/notifications`)).json;
        return n.deliveries.every((d: { status: string }) => d.status === 'delivered') && n;
      });
      assert.deepEqual(log.deliveries.map((d: { event: string }) => d.event).sort(), [
        'alert.firing',
        'alert.resolved',
      ]);
      assert.equal(sent.filter((x) => JSON.parse(x.body).alert.id === alert.id).length, 2, 'sent once each');
    });

    it('reads at most MAX_EVALUATION_POINTS of a series per anomaly evaluation, however long the rule looks back', async (t) => {
      if (ctx.flavour === 'timescaledb') return t.skip('volume test: plain PostgreSQL only');
      // 24,000 points a second apart, all inside the duration (7 h) of the rule below.
      const start = T0 - 30_000 * S,
        n = 24_000;
      const rand = prng(11);
      for (let i = 0; i < n; i += 4_000)
        await points(
          'queue_depth',
          'q',
          {},
          start + i * S,
          Array.from({ length: 4_000 }, () => 10 + rand()),
          S,
        );
      const rule = await ctx.t.post('/api/v1/alert-rules', {
        name: 'queue_anomaly',
        type: 'anomaly',
        metric: 'queue_depth',
        source: 'q',
        algorithm: 'mad',
        window_seconds: 3_600,
        duration_seconds: 25_200,
      });
      assert.equal(rule.status, 201, rule.body);
      const repo = ctx.t.app.get(AlertsRepository);
      const read = repo.points.bind(repo);
      const reads: number[] = [];
      repo.points = async (...args) => {
        const rows = await read(...args);
        reads.push(rows.length);
        return rows;
      };
      try {
        const r = await evaluate(start + n * S);
        assert.equal(r.errors, 0);
      } finally {
        repo.points = read;
      }
      assert.ok(reads.length >= 2, `${reads.length} reads`);
      assert.ok(Math.max(...reads) === MAX_EVALUATION_POINTS, `reads of ${reads.join(', ')} points`);
    });
  },
  { WEBHOOK_RETRY_BASE_MS: '5', WEBHOOK_RETRY_MAX_MS: '20' },
);
