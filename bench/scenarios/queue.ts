import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createKeyspace, GENERATION_QUEUE } from '../../src/contract/index.js';
import { createGenerationQueue, enqueueGeneration } from '../../src/triton/generation-queue.js';
import { serviceEnv, type BenchContext } from '../lib/bench-context.js';
import { ratioTarget, type ScenarioResult } from '../lib/bench-report.js';
import { epochMs } from '../lib/clock.js';
import { createBenchClient, inParallel, postJson } from '../lib/http-json.js';
import { startServerProcess } from '../lib/server-process.js';

const WARM_UP_JOBS = 20;

interface QueueMeasure {
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  /** How long submitting took (the jobs run meanwhile). */
  submitSeconds: number;
  failed: number;
  serverCpuMs: number;
}

/** Counts `job:completed` and `job:failed` on the all-jobs channel. */
async function completionCounter(redisUrl: string) {
  const sub = new Redis(redisUrl, { maxRetriesPerRequest: null });
  let completed = 0;
  let failed = 0;
  let waiter: { count: number; resolve: () => void } | undefined;
  sub.on('message', (_channel: string, message: string) => {
    if (message.includes('"event_type":"job:completed"')) completed++;
    else if (message.includes('"event_type":"job:failed"')) failed++;
    if (waiter && completed + failed >= waiter.count) waiter.resolve();
  });
  await sub.subscribe(createKeyspace().allJobsChannel);
  return {
    get failed() {
      return failed;
    },
    /** Resolves once `count` jobs have ended since the counter started. */
    waitFor(count: number, timeoutMs: number): Promise<void> {
      if (completed + failed >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${completed + failed} of ${count} jobs ended`)),
          timeoutMs,
        );
        waiter = {
          count,
          resolve: () => {
            clearTimeout(timer);
            waiter = undefined;
            resolve();
          },
        };
      });
    },
    close: () => sub.quit().catch(() => sub.disconnect()),
  };
}

async function measureProject(ctx: BenchContext): Promise<QueueMeasure> {
  const { queueJobs, queueConcurrency, queueTemplates, queueInFlight } = ctx.options;
  await ctx.admin.flushall();
  const server = await startServerProcess(
    {
      kind: 'system',
      env: serviceEnv(ctx, {
        GENERATION_STEP_MS: '0',
        WORKER_CONCURRENCY: String(queueConcurrency),
      }),
      noopTemplates: queueTemplates,
      mare: false,
    },
    'triton (api + worker)',
  );
  const counter = await completionCounter(ctx.redisUrl);
  try {
    const tritonUrl = server.info.tritonUrl ?? '';
    const clientId = await createBenchClient(tritonUrl);
    const submit = () =>
      postJson(`${tritonUrl}/clients/${clientId}/generate-templates`, {}, 202).then(
        () => undefined,
      );
    await inParallel(WARM_UP_JOBS, queueInFlight, submit);
    await counter.waitFor(WARM_UP_JOBS, 60_000);

    ctx.log(`triton: ${queueJobs} jobs through triton-api, concurrency ${queueConcurrency}`);
    const cpu0 = await server.cpu();
    const start = epochMs();
    await inParallel(queueJobs, queueInFlight, submit);
    const submitted = epochMs();
    await counter.waitFor(WARM_UP_JOBS + queueJobs, 600_000);
    const end = epochMs();
    const cpu1 = await server.cpu();
    return {
      jobs: queueJobs,
      seconds: (end - start) / 1000,
      jobsPerSecond: (queueJobs * 1000) / (end - start),
      submitSeconds: (submitted - start) / 1000,
      failed: counter.failed,
      serverCpuMs: cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs,
    };
  } finally {
    await counter.close();
    await server.stop();
  }
}

async function measureBare(ctx: BenchContext): Promise<QueueMeasure> {
  const { queueJobs, queueConcurrency, queueInFlight } = ctx.options;
  await ctx.admin.flushall();
  // The project's own queue options (attempts, backoff, removal) under a prefix of its own.
  const keyspace = createKeyspace('bench:raw:');
  const worker = await startServerProcess(
    {
      kind: 'raw-bullmq',
      redisUrl: ctx.redisUrl,
      queueName: GENERATION_QUEUE,
      prefix: keyspace.queuePrefix,
      concurrency: queueConcurrency,
    },
    'raw BullMQ worker',
  );
  const connection = new Redis(ctx.redisUrl, { maxRetriesPerRequest: null });
  const queue = createGenerationQueue({ connection, keyspace });
  try {
    const add = () => enqueueGeneration(queue, { job_id: randomUUID(), client_id: randomUUID() });
    await inParallel(WARM_UP_JOBS, queueInFlight, add);
    await worker.call('waitCompleted', { count: WARM_UP_JOBS, timeoutMs: 60_000 });

    ctx.log(`raw BullMQ: ${queueJobs} jobs, concurrency ${queueConcurrency}`);
    const cpu0 = await worker.cpu();
    const start = epochMs();
    await inParallel(queueJobs, queueInFlight, add);
    const submitted = epochMs();
    await worker.call('waitCompleted', { count: WARM_UP_JOBS + queueJobs, timeoutMs: 600_000 });
    const end = epochMs();
    const cpu1 = await worker.cpu();
    return {
      jobs: queueJobs,
      seconds: (end - start) / 1000,
      jobsPerSecond: (queueJobs * 1000) / (end - start),
      submitSeconds: (submitted - start) / 1000,
      failed: 0,
      serverCpuMs: cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs,
    };
  } finally {
    await queue.close();
    await connection.quit().catch(() => connection.disconnect());
    await worker.stop();
  }
}

/**
 * 6. Queue throughput: jobs per second end to end (submitted to triton-api, run by its worker
 * with a generator that does no work, `job:completed` seen on Redis) against BullMQ's own
 * Queue and a Worker doing nothing, on the same Redis with the same concurrency.
 */
export async function runQueue(ctx: BenchContext): Promise<ScenarioResult> {
  const { queueJobs, queueConcurrency, queueTemplates, queueInFlight, database } = ctx.options;
  const project = await measureProject(ctx);
  const bare = await measureBare(ctx);
  const perJob = (m: QueueMeasure) => m.serverCpuMs / m.jobs;
  return {
    scenario: 'queue',
    title: 'Queue throughput: triton end to end (no-op generator) vs raw BullMQ',
    params: {
      jobs: queueJobs,
      concurrency: queueConcurrency,
      templates: queueTemplates,
      inFlight: queueInFlight,
      db: database,
    },
    rows: [
      { metric: 'jobs/s', unit: '/s', project: project.jobsPerSecond, bare: bare.jobsPerSecond },
      { metric: 'time for all jobs', unit: 's', project: project.seconds, bare: bare.seconds },
      {
        metric: 'time to submit them',
        unit: 's',
        project: project.submitSeconds,
        bare: bare.submitSeconds,
      },
      { metric: 'failed jobs', unit: 'jobs', project: project.failed, bare: bare.failed },
      { metric: 'server CPU per job', unit: 'ms', project: perJob(project), bare: perJob(bare) },
    ],
    targets: [
      ratioTarget(
        'queue: ≥ 0.8× raw BullMQ jobs/s',
        project.jobsPerSecond,
        bare.jobsPerSecond,
        0.8,
        'atLeast',
        '/s',
      ),
    ],
    notes: [
      `project: POST /clients/{id}/generate-templates on triton-api (a record, job:queued, enqueue), then the worker (records, ${queueTemplates} templates, ${queueTemplates + 2} events); raw: Queue.add and an empty processor`,
    ],
    details: { project, bare },
  };
}
