import assert from 'node:assert/strict';
import { it } from 'node:test';
import { JobsService } from '../../src/jobs/jobs.service.js';
import { describeEachFlavour } from '../support/suite.js';
import { waitFor } from '../support/wait.js';

describeEachFlavour(
  'job schedules',
  (ctx) => {
    it('takes a new interval given while a run on demand goes on, and shows the timer it keeps', async () => {
      const jobs = ctx.t.app.get(JobsService);
      let every = 3_600_000;
      let runs = 0;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      jobs.register({
        name: 'schedule-test',
        description: 'a test job',
        every: () => every,
        run: async () => {
          if (++runs === 2) await held; // the run on demand
          return {};
        },
      });
      const row = async () => (await jobs.list()).find((j) => j.name === 'schedule-test')!;
      // Registered on a started scheduler: its first run comes a second later, then one an hour.
      await waitFor(async () => runs === 1 && (await row()).next_run_at !== null, 5_000, 'the first run');
      const hourly = (await row()).next_run_at;
      const manual = jobs.runNow('schedule-test');
      try {
        await waitFor(() => runs === 2, 3_000, 'the run on demand');
        assert.equal((await row()).next_run_at, hourly, 'the timer it keeps is still shown during a run on demand');
        every = 200; // as a PUT of the job's interval does, then asks for a reschedule
        jobs.reschedule('schedule-test');
        release();
        await manual;
        await waitFor(() => runs >= 4, 3_000, 'runs on the new 200 ms interval');
      } finally {
        every = 3_600_000;
        release(); // a failure above must not leave the run (and the app's shutdown) waiting
        await manual;
      }
    });
  },
  { JOBS_ENABLED: 'true' },
  { flavours: ['postgresql'] },
);
