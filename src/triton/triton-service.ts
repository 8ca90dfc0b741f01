import { Worker } from 'bullmq';
import type { PGlite } from '@electric-sql/pglite';
import { createKeyspace, GENERATION_QUEUE } from '../contract/index.js';
import { ApiKeys } from '../common/api-keys.js';
import {
  authEnabled,
  requireAuthDecision,
  type CommonConfig,
  type TritonConfig,
} from '../common/config.js';
import { registerHealthRoutes } from '../common/health.js';
import { boundPort, createHttpApp, localUrl, type HttpApp } from '../common/http.js';
import type { Logger } from '../common/logger.js';
import { createRegistry, registerMetricsRoute } from '../common/metrics.js';
import {
  closeRedis,
  createRedisClient,
  detectRedis,
  redactUrl,
  waitForRedis,
  type RedisClient,
} from '../common/redis.js';
import { RepeatedErrorLog } from '../common/repeated-error-log.js';
import { buildTritonApi } from './api/triton-api.js';
import { openDatabase, type TritonDatabase } from './db/database.js';
import { TritonStore } from './db/triton-store.js';
import { EventPublisher } from './events/event-publisher.js';
import {
  createGenerationQueue,
  type GenerationJobData,
  type GenerationQueue,
} from './generation-queue.js';
import { TritonMetrics } from './triton-metrics.js';
import {
  createGenerationProcessor,
  WorkerShutdown,
  type GenerationResult,
} from './worker/generation-processor.js';
import { CancellationWatcher } from './worker/cancellation-watcher.js';
import { JobSweeper } from './worker/job-sweeper.js';
import { createTemplateGenerator } from './worker/create-template-generator.js';
import type { TemplateGenerator } from './worker/template-generator.js';

/** What {@link startTriton} runs: the API, a worker or both, from the configuration. */
export interface StartTritonOptions {
  common: CommonConfig;
  triton: TritonConfig;
  logger: Logger;
  /** Serve the HTTP API. */
  api: boolean;
  /** Run a worker in this process. */
  worker: boolean;
  /** Use this PGlite instead of opening the configured database (tests). */
  pglite?: PGlite;
  /** Use this generator instead of the configured one (GENERATOR). */
  generator?: TemplateGenerator;
  /** Port to listen on instead of the configured one (0: any free port). */
  port?: number;
}

/** A running triton process (API, worker or both), for its launcher and for tests. */
export interface TritonService {
  /** Base URL of the API (or of a lone worker's health and metrics server), when there is one. */
  readonly url: string | undefined;
  readonly app: HttpApp | undefined;
  readonly database: TritonDatabase;
  readonly worker: Worker<GenerationJobData, GenerationResult> | undefined;
  readonly queue: GenerationQueue;
  readonly redis: RedisClient;
  /** Stops taking work, lets running jobs finish, closes every connection. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Lets running jobs finish, up to `timeoutMs`; then gives them back: `shutdown` aborts them, and
 * each goes straight back to the queue (not counted as stalled) for another worker to continue.
 */
async function closeWorker(
  worker: Worker,
  shutdown: AbortController,
  timeoutMs: number,
  log: Logger,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const closing = worker.close();
  const outcome = await Promise.race([closing, timedOut]);
  clearTimeout(timer);
  if (outcome !== 'timeout') return;
  log.warn(`Running jobs did not finish within ${timeoutMs} ms; they go back to the queue`);
  shutdown.abort(new WorkerShutdown());
  // Handing a job back takes a few round trips; a job stuck past that is left to its lock.
  const handedBack = await Promise.race([
    closing.then(() => true),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 5000).unref()),
  ]);
  if (!handedBack) {
    closing.catch(() => undefined);
    log.warn('Some running jobs could not be handed back; their locks will lapse');
  }
}

/** Starts triton-api and/or a worker against one Redis and one database. */
export async function startTriton(options: StartTritonOptions): Promise<TritonService> {
  const { common, triton, logger } = options;
  const redisUrl = common.redisUrl;
  if (!redisUrl) throw new Error('REDIS_URL is not set');
  if (options.api) requireAuthDecision(common);
  const keyspace = createKeyspace(common.keyPrefix);
  const log = logger.child({ service: options.api ? 'triton-api' : 'triton-worker' });

  // Publishing waits for Redis to come back rather than losing an event.
  const target = await detectRedis(redisUrl);
  const redis = createRedisClient(target, {
    name: 'triton',
    logger: log,
    maxRetriesPerRequest: null,
  });
  await waitForRedis(redis, redisUrl);
  log.info(`Redis: ${redactUrl(redisUrl)}${target.cluster ? ' (cluster)' : ''}`);

  const database = await openDatabase(
    options.pglite
      ? { pglite: options.pglite }
      : triton.databaseUrl
        ? { databaseUrl: triton.databaseUrl }
        : { pgliteDataDir: triton.pgliteDataDir },
    log,
  );
  log.info(`Database: ${database.location}`);
  const store = new TritonStore(database.db);

  const queue = createGenerationQueue({
    connection: redis,
    keyspace,
    attempts: triton.jobAttempts,
  });
  // BullMQ reports each failed reconnection: once per kind of failure is enough for a log.
  const errors = new RepeatedErrorLog(log);
  queue.on('error', (err) => errors.warn(err, 'Queue error'));
  const registry = createRegistry(options.api ? 'triton-api' : 'triton-worker');
  const metrics = new TritonMetrics(registry, () =>
    queue.getJobCounts('waiting', 'active', 'delayed', 'failed'),
  );
  const publisher = new EventPublisher({
    redis,
    keyspace,
    logger: log,
    metrics,
    historyTtlSeconds: triton.history.ttlSeconds,
    maxPerJob: triton.history.maxPerJob,
    maxGlobal: triton.history.maxGlobal,
  });

  let worker: Worker<GenerationJobData, GenerationResult> | undefined;
  let sweeper: JobSweeper | undefined;
  let cancellations: CancellationWatcher | undefined;
  const shutdown = new AbortController();
  if (options.worker) {
    const generator =
      options.generator ?? createTemplateGenerator(triton, { logger: log, metrics });
    cancellations = new CancellationWatcher({
      target,
      redis,
      keyspace,
      logger: log,
    });
    await cancellations.start();
    const processor = createGenerationProcessor({
      store,
      publisher,
      generator,
      cancellations,
      shutdown: shutdown.signal,
      deltaIntervalMs: triton.deltaIntervalMs,
      logger: log,
      metrics,
      timeoutMs: triton.jobTimeoutMs,
    });
    worker = new Worker<GenerationJobData, GenerationResult>(GENERATION_QUEUE, processor, {
      connection: redis,
      prefix: keyspace.queuePrefix,
      concurrency: triton.workerConcurrency,
      // A worker that dies holding a job loses its lock after lockDuration; the job is then
      // retried (up to maxStalledCount times) or failed, and the sweeper announces the failure.
      lockDuration: triton.jobLockMs,
      stalledInterval: triton.jobLockMs,
      maxStalledCount: triton.jobMaxStalled,
    });
    worker.on('error', (err) => errors.error(err, 'Worker error'));
    worker.on('stalled', (jobId) =>
      log.warn({ job_id: jobId }, `Job ${jobId} was abandoned by a worker; retrying it`),
    );
    sweeper = new JobSweeper({
      store,
      queue,
      publisher,
      logger: log,
      metrics,
      keyspace,
      connection: redis,
      timeoutMs: triton.jobTimeoutMs,
      intervalMs: triton.jobSweepIntervalMs,
      // Long enough for a job to get from the database into the queue, and for a dead worker's
      // lock to expire, before the sweeper judges it.
      graceMs: 2 * triton.jobLockMs,
    });
    await Promise.all([worker.waitUntilReady(), sweeper.start()]);
    log.info(
      `Worker running (concurrency ${triton.workerConcurrency}, generator ${generator.name}` +
        (generator.name === 'builtin' ? `, ${triton.generationStepMs} ms per template)` : ')'),
    );
  }

  let app: HttpApp | undefined;
  let url: string | undefined;
  let requestRedis: RedisClient | undefined;
  if (options.api) {
    // What requests ask of Redis themselves (rate limits, cancellations, readiness) fails fast
    // while Redis is away, rather than waiting for it as publishing and the queue do.
    requestRedis = createRedisClient(target, {
      name: 'triton-requests',
      logger: log,
      maxRetriesPerRequest: 1,
    });
    await waitForRedis(requestRedis, redisUrl);
    const fastRedis = requestRedis;
    const auth = authEnabled(common);
    log.info(
      auth
        ? 'Auth: on (every request needs an API key; each tenant sees its own records)'
        : 'Auth: off (anyone who reaches this API may use it; set AUTH=on to require API keys)',
    );
    app = await buildTritonApi({
      store,
      queue,
      publisher,
      redis: fastRedis,
      keyspace,
      logger: log,
      registry,
      metrics,
      bodyLimit: common.bodyLimitBytes,
      trustProxy: common.trustProxy,
      rateLimit: {
        submitPerMinute: common.submitRateLimitPerMinute,
        writePerMinute: common.writeRateLimitPerMinute,
        gatewaySecret: common.gatewaySecret,
      },
      queueUi: triton.queueUi ? {} : false,
      ...(auth
        ? {
            auth: {
              keys: new ApiKeys({ redis: fastRedis, keyspace }),
              gatewaySecret: common.gatewaySecret,
            },
          }
        : {}),
      corsOrigins: common.corsOrigins,
      metricsToken: common.metricsToken,
      readiness: {
        redis: () => fastRedis.ping(),
        database: () => database.ping(),
      },
    });
    await app.listen({ host: common.host, port: options.port ?? triton.port });
    url = localUrl(common.host, boundPort(app, triton.port));
  } else if (triton.workerMetricsPort > 0) {
    // A worker on its own has no API; it still answers health checks and Prometheus.
    app = createHttpApp({ logger: log });
    registerMetricsRoute(app, registry, 'triton_worker', undefined, {
      token: common.metricsToken,
    });
    registerHealthRoutes(app, 'triton-worker', {
      redis: () => redis.ping(),
      database: () => database.ping(),
    });
    await app.listen({ host: common.host, port: triton.workerMetricsPort });
    url = localUrl(common.host, boundPort(app, triton.workerMetricsPort));
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    database,
    worker,
    queue,
    redis,
    close() {
      closing ??= (async () => {
        await app?.close();
        await sweeper?.close();
        if (worker) await closeWorker(worker, shutdown, common.shutdownTimeoutMs, log);
        await cancellations?.close();
        await queue.close();
        await database.close();
        if (requestRedis) await closeRedis(requestRedis);
        await closeRedis(redis);
      })();
      return closing;
    },
  };
}
