import { afterEach, describe, expect, it } from 'vitest';
import { PartProcess } from '../../helpers/part-process.js';
import { openSse, payloads } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import type { EventData as Event } from '../../helpers/events.js';

/**
 * Drill 2: a worker process is killed with SIGKILL in the middle of a job. BullMQ notices the
 * job's lock expired; the job is retried by another worker, or, once it has stalled too often,
 * failed, and either way its watchers are told. A job that outlives its deadline is failed.
 */

let system: TestSystem | undefined;
const workers: PartProcess[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.kill()));
  await system?.close();
  system = undefined;
});

function startWorker(sys: TestSystem, env: Record<string, string>): Promise<PartProcess> {
  const worker = PartProcess.start(
    'src/triton/main-worker.ts',
    {
      REDIS_URL: sys.redis.url,
      DATABASE_URL: sys.databaseUrl ?? '',
      LOG_LEVEL: 'info',
      GENERATION_STEP_MS: '250',
      JOB_LOCK_MS: '1000',
      JOB_SWEEP_INTERVAL_MS: '500',
      ...env,
    },
    { ready: /^Worker running/ },
  );
  void worker.then((w) => workers.push(w));
  return worker;
}

async function submitAndWatch(sys: TestSystem, clientId: string) {
  const res = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(res.status).toBe(202);
  const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${res.body.job_id}/subscribe`);
  return { jobId: res.body.job_id, sse };
}

describe('a worker killed mid-job', () => {
  it(
    'has its job retried by another worker, and watchers see it through to completion',
    { timeout: 120_000 },
    async () => {
      system = await startSystem({ worker: false });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const first = await startWorker(sys, { JOB_MAX_STALLED: '1' });
      const { jobId, sse } = await submitAndWatch(sys, clientId);

      await waitFor('the job to be half done', () =>
        payloads<Event>(sse).some((e) => e.event_type === 'job:progress' && e.seq >= 5),
      );
      await first.kill();
      const second = await startWorker(sys, { JOB_MAX_STALLED: '1' });

      await sse.ended;
      const events = payloads<Event>(sse);
      expect(events.filter((e) => e.event_type === 'job:started')).toHaveLength(2);
      expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', status: 'completed' });
      const seqs = events.map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      await second.waitForLog(/was abandoned by a worker|Generating templates/);

      const doc = await http<{ status: string; template_count: number }>(
        'GET',
        `${sys.tritonUrl}/jobs/${jobId}`,
      );
      // The retry starts over: the interrupted attempt's templates are not kept alongside.
      expect(doc.body).toMatchObject({ status: 'completed', template_count: 7 });
    },
  );

  it(
    'is failed, with a message saying why, once it has stalled more often than allowed',
    { timeout: 120_000 },
    async () => {
      system = await startSystem({ worker: false });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const first = await startWorker(sys, { JOB_MAX_STALLED: '0' });
      const { jobId, sse } = await submitAndWatch(sys, clientId);

      await waitFor('the job to be under way', () =>
        payloads<Event>(sse).some((e) => e.event_type === 'job:progress'),
      );
      await first.kill();
      await startWorker(sys, { JOB_MAX_STALLED: '0' });

      await sse.ended;
      const last = payloads<Event>(sse).at(-1);
      expect(last).toMatchObject({ event_type: 'job:failed', status: 'failed' });
      expect(last?.error_message).toMatch(/^Template generation failed: .*stalled/);
      expect(sse.comments.at(-1)).toBe('Connection closing - job failed');
      const doc = await http<{ status: string }>('GET', `${sys.mareUrl}/v1/triton/jobs/${jobId}`);
      expect(doc.body.status).toBe('failed');
    },
  );
});

describe('a job that outlives its deadline', () => {
  it(
    'is failed with a clear error_message and its watchers are told',
    { timeout: 60_000 },
    async () => {
      system = await startSystem({ env: { GENERATION_STEP_MS: '200', JOB_TIMEOUT_MS: '500' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const { sse } = await submitAndWatch(sys, clientId);
      await sse.ended;
      const last = payloads<Event>(sse).at(-1);
      expect(last).toMatchObject({ event_type: 'job:failed' });
      expect(last?.error_message).toBe(
        'Template generation failed: the job did not finish within its 0.5 s deadline',
      );
    },
  );
});
