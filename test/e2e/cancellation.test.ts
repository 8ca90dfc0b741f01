import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createKeyspace,
  ErrorBody,
  GENERATION_QUEUE,
  type JobStatusDocument,
  type TemplateList,
} from '../../src/contract/index.js';
import { textsFromDeltas, type EventData as Event } from '../helpers/events.js';
import { startOpenAiTestServer, type OpenAiTestServer } from '../helpers/openai-test-server.js';
import { PartProcess } from '../helpers/part-process.js';
import { openSse, payloads, type SseConnection } from '../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Cancelling a job through mare-api, across processes: the worker that runs it is a process of
 * its own, reached only through Redis. A running job stops within a second and keeps the
 * templates it stored; a model request in flight is cut; a queued job never starts; a job is
 * cancelled once, never retried; a finished, unknown or malformed job is refused clearly.
 */

const keyspace = createKeyspace();
let sys: TestSystem;
let model: OpenAiTestServer;
let queue: Queue;
let clientId: string;
/** Workers of one test, stopped after it. */
const workers: PartProcess[] = [];
/** A worker with quick jobs, for the tests that only need jobs to run; stopped at the end. */
let quick: Promise<PartProcess> | undefined;
const streams: SseConnection[] = [];

beforeAll(async () => {
  model = await startOpenAiTestServer();
  // triton-api without a worker: every job here runs in a worker process of its own.
  sys = await startSystem({ worker: false, env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '0' } });
  queue = new Queue(GENERATION_QUEUE, {
    connection: { url: sys.redis.url },
    prefix: keyspace.queuePrefix,
  });
  clientId = await createClientWithProposition(sys.tritonUrl);
});

afterEach(async () => {
  for (const sse of streams.splice(0)) sse.close();
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

afterAll(async () => {
  await (await quick)?.stop();
  await queue?.close();
  await sys?.close();
  await model?.close();
});

/** Starts a worker process against the system's Redis and Postgres. */
function spawnWorker(env: Record<string, string>): Promise<PartProcess> {
  return PartProcess.start(
    'src/triton/main-worker.ts',
    {
      LOG_LEVEL: 'info',
      REDIS_URL: sys.redis.url,
      DATABASE_URL: sys.databaseUrl ?? '',
      JOB_SWEEP_INTERVAL_MS: '500',
      ...env,
    },
    { ready: /^Worker running/ },
  );
}

/** Starts a worker for this test alone; it is stopped after the test. */
async function startWorker(env: Record<string, string>): Promise<PartProcess> {
  const worker = await spawnWorker(env);
  workers.push(worker);
  return worker;
}

/** The shared quick worker, started when first needed. */
function quickWorker(): Promise<PartProcess> {
  quick ??= spawnWorker({ GENERATION_STEP_MS: '20' });
  return quick;
}

/** Stops the shared quick worker, if it runs: no job runs until something starts a worker. */
async function noWorker(): Promise<void> {
  const running = quick;
  quick = undefined;
  await (await running)?.stop();
}

async function submit(): Promise<string> {
  const res = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(res.status).toBe(202);
  return res.body.job_id;
}

async function watch(jobId: string): Promise<SseConnection> {
  const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
  streams.push(sse);
  return sse;
}

const cancel = (jobId: string, base = `${sys.mareUrl}/v1/triton`) =>
  http<JobStatusDocument>('POST', `${base}/jobs/${jobId}/cancel`);

async function templatesOf(jobId: string) {
  const res = await http<TemplateList>('GET', `${sys.tritonUrl}/jobs/${jobId}/templates`);
  expect(res.status).toBe(200);
  return res.body.templates;
}

/** Waits for an event of `type` on `sse`; returns it and when it was seen (`performance.now()`). */
async function seen(sse: SseConnection, type: string): Promise<{ event: Event; at: number }> {
  return waitFor(
    type,
    () => {
      const event = payloads<Event>(sse).find((e) => e.event_type === type);
      return event && { event, at: performance.now() };
    },
    { intervalMs: 2 },
  );
}

function expectError(res: { status: number; body: unknown }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const parsed = ErrorBody.safeParse(res.body);
  expect(parsed.success, JSON.stringify(res.body)).toBe(true);
  expect(parsed.data?.error.code).toBe(code);
}

/** Runs a job to completion on whatever worker is running: time for anything queued to run. */
async function runToCompletion(): Promise<string> {
  const jobId = await submit();
  const sse = await watch(jobId);
  await sse.ended;
  expect(payloads<Event>(sse).at(-1)?.event_type).toBe('job:completed');
  return jobId;
}

describe('cancelling a job through mare-api', () => {
  it(
    'stops a running job in another process within a second, keeps its stored templates, says cancelled everywhere, and never runs it again',
    { timeout: 40_000 },
    async () => {
      await startWorker({ GENERATION_STEP_MS: '300', DELTA_INTERVAL_MS: '30' });
      const jobId = await submit();
      const sse = await watch(jobId);
      await waitFor('two templates stored and the third being written', () => {
        const events = payloads<Event>(sse);
        const stored = events.filter((e) => e.event_type === 'job:progress').length;
        return stored >= 2 && events.at(-1)?.event_type === 'job:delta';
      });

      const requestedAt = performance.now();
      const answer = await cancel(jobId);
      expect(answer.status).toBe(202);
      expect(answer.body.job_id).toBe(jobId);
      expect(['running', 'cancelled']).toContain(answer.body.status);
      const { event: cancelled, at } = await seen(sse, 'job:cancelled');
      const latencyMs = at - requestedAt;
      console.info(
        `job:cancelled reached the watcher ${Math.round(latencyMs)} ms after the request`,
      );
      expect(latencyMs).toBeLessThan(1000);
      await sse.ended;
      expect(sse.comments.at(-1)).toBe('Connection closing - job cancelled');

      // The templates stored before the cancellation stay, and the event names them.
      const templates = await templatesOf(jobId);
      expect(templates.length).toBeGreaterThanOrEqual(2);
      expect(templates.length).toBeLessThan(7);
      expect(cancelled.template_ids).toEqual(templates.map((t) => t.id));
      expect(cancelled.template_count).toBe(templates.length);
      const events = payloads<Event>(sse);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const texts = textsFromDeltas(events);
      for (const t of templates) expect(texts.get(t.position)).toBe(t.body);

      // The status document says cancelled, at triton-api and at the gateway, whose cached
      // lookup answers it without asking triton-api.
      const doc = await http<JobStatusDocument>('GET', `${sys.tritonUrl}/jobs/${jobId}`);
      expect(doc.body).toMatchObject({
        status: 'cancelled',
        template_ids: cancelled.template_ids,
        template_count: templates.length,
      });
      const lookup = await http<JobStatusDocument>('GET', `${sys.mareUrl}/v1/triton/jobs/${jobId}`);
      expect(lookup.headers.get('x-cache')).toBe('hit');
      expect(lookup.body).toMatchObject({
        status: 'cancelled',
        template_ids: cancelled.template_ids,
      });

      // Never retried: the attempt ended as a success for the queue, and after another job has
      // run start to finish on the same worker (longer than a retry's back-off), the cancelled
      // job's history still ends with its one job:started and its job:cancelled.
      await waitFor(
        'the queue to count the cancelled attempt as done',
        async () => (await (await queue.getJob(jobId))?.getState()) === 'completed',
      );
      await runToCompletion();
      const again = await watch(jobId);
      await again.ended;
      const history = payloads<Event>(again);
      expect(history).toEqual(events);
      expect(history.filter((e) => e.event_type === 'job:started')).toHaveLength(1);
      const after = await http<JobStatusDocument>('GET', `${sys.tritonUrl}/jobs/${jobId}`);
      expect(after.body.status).toBe('cancelled');
    },
  );

  it(
    "closes the language model's connection in flight when the job is cancelled (GENERATOR=openai)",
    { timeout: 40_000 },
    async () => {
      const slow = Array.from({ length: 40 }, (_, i) => `Word ${i}, `);
      model.answer(
        { type: 'stream', pieces: ['Subject: hello\n\n', 'Hi {{first_name}},'] },
        // The second template, slowly: 40 pieces 150 ms apart.
        { type: 'stream', pieces: slow, delayMs: 150 },
      );
      await startWorker({
        GENERATOR: 'openai',
        OPENAI_BASE_URL: model.url,
        OPENAI_MODEL: 'test-model',
        DELTA_INTERVAL_MS: '20',
      });
      const before = model.requests.length;
      const jobId = await submit();
      const sse = await watch(jobId);
      await waitFor('the second template being written', () => {
        const last = payloads<Event>(sse).at(-1);
        return last?.event_type === 'job:delta' && last.template_index === 1;
      });
      const inFlight = model.requests[before + 1];
      expect(inFlight).toBeDefined();
      expect(inFlight!.answeredAt).toBeUndefined();

      const requestedAt = performance.now();
      expect((await cancel(jobId)).status).toBe(202);
      await waitFor('the model request to close', () => inFlight!.answeredAt !== undefined);
      expect(inFlight!.closedByClient).toBe(true);
      expect(inFlight!.answeredAt! - requestedAt).toBeLessThan(1000);

      const { event: cancelled } = await seen(sse, 'job:cancelled');
      await sse.ended;
      expect(cancelled.template_count).toBe(1);
      expect(cancelled.template_ids).toEqual((await templatesOf(jobId)).map((t) => t.id));
      // The worker asked the model for nothing more.
      expect(model.requests).toHaveLength(before + 2);
    },
  );

  it(
    'ends a queued job at once: it never starts, not even once a worker comes',
    { timeout: 40_000 },
    async () => {
      await noWorker();
      const jobId = await submit();
      const sse = await watch(jobId);
      await seen(sse, 'job:queued');

      const answer = await cancel(jobId);
      expect(answer.status).toBe(202);
      expect(answer.body).toMatchObject({ job_id: jobId, status: 'cancelled', template_count: 0 });
      await sse.ended;
      expect(payloads<Event>(sse).map((e) => e.event_type)).toEqual([
        'job:queued',
        'job:cancelled',
      ]);
      expect(sse.comments.at(-1)).toBe('Connection closing - job cancelled');
      expect(await queue.getJob(jobId)).toBeUndefined();

      // A worker that comes afterwards runs the next job, and never the cancelled one.
      const worker = await quickWorker();
      await runToCompletion();
      const again = await watch(jobId);
      await again.ended;
      expect(payloads<Event>(again).map((e) => e.event_type)).toEqual([
        'job:queued',
        'job:cancelled',
      ]);
      expect(worker.logs.some((l) => l.job_id === jobId)).toBe(false);
      const doc = await http<JobStatusDocument>('GET', `${sys.tritonUrl}/jobs/${jobId}`);
      expect(doc.body).toMatchObject({ status: 'cancelled', template_count: 0 });
      expect(await templatesOf(jobId)).toEqual([]);
    },
  );

  it('refuses a job that already ended (409 JOB_FINISHED), an unknown job (404) and a malformed id (400), on both APIs', async () => {
    await quickWorker();
    const completed = await runToCompletion();
    const queued = await submit();
    // Ended by a cancellation: it cannot be cancelled twice either (if the worker took it
    // first, it completed, which is refused the same way).
    await cancel(queued);
    for (const base of [`${sys.mareUrl}/v1/triton`, sys.tritonUrl]) {
      for (const jobId of [completed, queued]) {
        expectError(await cancel(jobId, base), 409, 'JOB_FINISHED');
      }
      expectError(await cancel(randomUUID(), base), 404, 'JOB_NOT_FOUND');
      expectError(await cancel('not-a-job-id', base), 400, 'INVALID_ID');
    }
    // A refused cancellation changed nothing.
    const doc = await http<JobStatusDocument>('GET', `${sys.tritonUrl}/jobs/${completed}`);
    expect(doc.body).toMatchObject({ status: 'completed', template_count: 7 });
  });
});
