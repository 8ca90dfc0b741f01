import { randomBytes, randomUUID } from 'node:crypto';
import { UnrecoverableError, Worker } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger } from '../../src/common/logger.js';
import { closeRedis, createRedis, type Redis } from '../../src/common/redis.js';
import {
  createKeyspace,
  decodeEvent,
  GENERATION_QUEUE,
  historyEntryField,
  type Keyspace,
} from '../../src/contract/index.js';
import { submitGeneration } from '../../src/triton/api/submit-generation.js';
import { openDatabase, type TritonDatabase } from '../../src/triton/db/database.js';
import { TritonStore } from '../../src/triton/db/triton-store.js';
import { EventPublisher } from '../../src/triton/events/event-publisher.js';
import {
  createGenerationQueue,
  type GenerationJobData,
  type GenerationQueue,
} from '../../src/triton/generation-queue.js';
import { timeoutMessage } from '../../src/triton/job-failure.js';
import { JobSweeper, type JobSweeperOptions } from '../../src/triton/worker/job-sweeper.js';
import type { EventData } from '../helpers/events.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The sweeper against a real redis-server and BullMQ queue, and a real store (the run's
 * Postgres). Each test has its own key prefix, queue and database (a sweeper judges every
 * unfinished job in its database); sweeps are run by hand unless the test is about the
 * sweeper's own timer.
 */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let server: RedisServer;
let redis: Redis;
/** The current test's store, on its own database, and a client in it. */
let store: TritonStore;
let clientId: string;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = createRedis(server.url, { name: 'test', logger, maxRetriesPerRequest: null });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  if (redis) await closeRedis(redis);
  await server?.close();
});

interface Harness {
  keyspace: Keyspace;
  queue: GenerationQueue;
  publisher: EventPublisher;
  /** A sweeper over this harness's queue (several may run at once), closed after the test. */
  sweeper: (options?: Partial<JobSweeperOptions>) => JobSweeper;
  /** Submits a job as triton-api does (`job:queued`, then the queue); returns its id. */
  submit: () => Promise<string>;
  /** The job's events as its history holds them, in seq order. */
  events: (jobId: string) => Promise<EventData[]>;
}

async function harness(): Promise<Harness> {
  const created = await createTestDatabase();
  cleanups.push(created.drop);
  const database: TritonDatabase = await openDatabase({ databaseUrl: created.url }, logger);
  cleanups.push(() => database.close());
  store = new TritonStore(database.db);
  clientId = (await store.createClient({ name: 'Sweeper Client', industry: 'Logistics' })).id;
  const keyspace = createKeyspace(`test-${randomBytes(4).toString('hex')}:`);
  const queue = createGenerationQueue({ connection: redis, keyspace, attempts: 1 });
  const publisher = new EventPublisher({ redis, keyspace, logger });
  cleanups.push(() => queue.close());
  return {
    keyspace,
    queue,
    publisher,
    sweeper(options = {}) {
      const sweeper = new JobSweeper({
        store,
        queue,
        publisher,
        logger,
        keyspace,
        connection: redis,
        timeoutMs: 60_000,
        // Sweeps run by hand unless a test asks for the timer.
        intervalMs: 60_000,
        graceMs: 0,
        ...options,
      });
      cleanups.push(() => sweeper.close());
      return sweeper;
    },
    async submit() {
      const { job_id } = await submitGeneration({ store, queue, publisher, logger }, clientId);
      return job_id;
    },
    async events(jobId) {
      const entries = await redis.xrange(keyspace.jobHistoryKey(jobId), '-', '+');
      return entries.map(
        ([, fields]) => decodeEvent(historyEntryField(fields, 'e') ?? '') as EventData,
      );
    },
  };
}

/**
 * Waits until the job's row is older than the clock's millisecond (the database keeps
 * microseconds), so that a sweep with no grace period counts it.
 */
async function aged(jobId: string): Promise<void> {
  const row = await store.getJob(jobId);
  const created = row?.created_at.getTime() ?? 0;
  await waitFor('the job to be a millisecond old', () => Date.now() > created + 1);
}

/** Fails the job in the queue as a worker would, outside the sweeper's processor. */
async function failInQueue(h: Harness, jobId: string, reason: string): Promise<void> {
  const worker = new Worker<GenerationJobData>(
    GENERATION_QUEUE,
    (job) => {
      if (job.id !== jobId) throw new Error(`unexpected job ${job.id}`);
      throw new UnrecoverableError(reason);
    },
    { connection: redis, prefix: h.keyspace.queuePrefix },
  );
  try {
    await waitFor('the queue to fail the job', async () => {
      const job = await h.queue.getJob(jobId);
      return (await job?.getState()) === 'failed';
    });
  } finally {
    await worker.close();
  }
}

const failures = (events: EventData[]) => events.filter((e) => e.event_type === 'job:failed');

describe('JobSweeper', () => {
  it('fails a running job that outlived its deadline with the deadline message, keeping its templates, and tells its watchers', async () => {
    const h = await harness();
    const jobId = await h.submit();
    await store.markJobStarted(jobId, new Date(Date.now() - 5000), 7);
    const templateId = randomUUID();
    await store.saveTemplate(
      {
        id: templateId,
        jobId,
        clientId,
        kind: 'outreach_email',
        position: 0,
        title: 'Outreach email',
        body: 'Hello',
        generator: 'builtin',
        usage: { prompt_tokens: 0, completion_tokens: 0, requests: 0, model_ms: 0 },
      },
      { done: 1, total: 7 },
    );
    await aged(jobId);

    await h.sweeper({ timeoutMs: 1000 }).sweep();

    const message = timeoutMessage(1000);
    expect(message).toBe(
      'Template generation failed: the job did not finish within its 1 s deadline',
    );
    expect(await store.jobStatusDocument(jobId)).toMatchObject({
      status: 'failed',
      error_message: message,
      template_ids: [templateId],
    });
    const events = await h.events(jobId);
    expect(events.map((e) => e.event_type)).toEqual(['job:queued', 'job:failed']);
    expect(events.at(-1)).toMatchObject({
      error_message: message,
      template_ids: [templateId],
      template_count: 1,
    });
  });

  it('leaves alone a running job within its deadline that the queue holds, and a young job not yet in the queue', async () => {
    const h = await harness();
    const running = await h.submit();
    await store.markJobStarted(running, new Date(), 7);
    await aged(running);
    await h.sweeper({ timeoutMs: 60_000 }).sweep();
    expect((await store.getJob(running))?.status).toBe('running');

    // Recorded, but not in the queue yet (triton-api enqueues right after): within its grace.
    const young = randomUUID();
    await store.createJob(young, clientId);
    await h.sweeper({ graceMs: 60_000 }).sweep();
    expect((await store.getJob(young))?.status).toBe('queued');
    expect(failures(await h.events(running))).toEqual([]);
    expect(failures(await h.events(young))).toEqual([]);
  });

  it('fails a job the queue lost, saying so', async () => {
    const h = await harness();
    const jobId = await h.submit();
    // As a Redis that restarted without persistence would: the job is gone from the queue.
    await (await h.queue.getJob(jobId))?.remove();
    await aged(jobId);

    await h.sweeper().sweep();

    const message = 'Template generation failed: the job was lost from the queue';
    expect(await store.getJob(jobId)).toMatchObject({ status: 'failed', error_message: message });
    expect(failures(await h.events(jobId))).toMatchObject([{ error_message: message }]);
  });

  it('fails a job the queue failed while no sweeper was listening, with the queue’s reason', async () => {
    const h = await harness();
    const jobId = await h.submit();
    await failInQueue(h, jobId, 'job stalled more than allowable limit');
    expect((await store.getJob(jobId))?.status, 'nobody recorded it yet').toBe('queued');
    await aged(jobId);

    await h.sweeper().sweep();

    const message = 'Template generation failed: job stalled more than allowable limit';
    expect(await store.getJob(jobId)).toMatchObject({ status: 'failed', error_message: message });
    expect(failures(await h.events(jobId))).toMatchObject([{ error_message: message }]);
  });

  it('fails a job as soon as the queue reports it failed, keeping a reason that already says what failed', async () => {
    const h = await harness();
    const sweeper = h.sweeper();
    await sweeper.start();
    const stalled = await h.submit();
    await failInQueue(h, stalled, 'job stalled more than allowable limit');
    await waitFor('the stalled job to be failed', async () => {
      return (await store.getJob(stalled))?.status === 'failed';
    });
    expect((await store.getJob(stalled))?.error_message).toBe(
      'Template generation failed: job stalled more than allowable limit',
    );

    const explained = await h.submit();
    const reason = 'Template generation failed: the worker ran out of memory';
    await failInQueue(h, explained, reason);
    await waitFor('the other job to be failed', async () => {
      return (await store.getJob(explained))?.status === 'failed';
    });
    expect((await store.getJob(explained))?.error_message).toBe(reason);
    expect(failures(await h.events(explained))).toMatchObject([{ error_message: reason }]);
  });

  it('sweeps by itself every intervalMs once started', async () => {
    const h = await harness();
    const jobId = await h.submit();
    await (await h.queue.getJob(jobId))?.remove();
    await h.sweeper({ intervalMs: 50 }).start();
    await waitFor('the lost job to be failed', async () => {
      return (await store.getJob(jobId))?.status === 'failed';
    });
    expect(failures(await h.events(jobId))).toHaveLength(1);
  });

  it('announces each failure once, however many sweepers notice it', async () => {
    const h = await harness();
    const lost = await h.submit();
    await (await h.queue.getJob(lost))?.remove();
    const late = await h.submit();
    await store.markJobStarted(late, new Date(Date.now() - 5000), 7);
    await aged(late);
    const sweepers = [h.sweeper({ timeoutMs: 1000 }), h.sweeper({ timeoutMs: 1000 })];
    await Promise.all(sweepers.flatMap((s) => [s.sweep(), s.sweep()]));

    expect(failures(await h.events(lost))).toHaveLength(1);
    expect(failures(await h.events(late))).toHaveLength(1);
  });

  it('shares one pass between concurrent sweeps, and is safe to close twice', async () => {
    const h = await harness();
    const sweeper = h.sweeper();
    await sweeper.start();
    expect(sweeper.sweep()).toBe(sweeper.sweep());
    const closing = sweeper.close();
    expect(sweeper.close()).toBe(closing);
    await closing;
    await expect(sweeper.close()).resolves.toBeUndefined();
  });
});
