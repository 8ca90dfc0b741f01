import { Worker } from 'bullmq';
import type { PGlite } from '@electric-sql/pglite';
import { createKeyspace, GENERATION_QUEUE } from '../contract/index.js';
import type { CommonConfig, TritonConfig } from '../common/config.js';
import { boundPort, localUrl, type HttpApp } from '../common/http.js';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { closeRedis, createRedis, redactUrl, waitForRedis, type Redis } from '../common/redis.js';
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
import { createGenerationProcessor, type GenerationResult } from './worker/generation-processor.js';
import { BuiltInTemplateGenerator, type TemplateGenerator } from './worker/template-generator.js';

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
  /** Replace the built-in generator. */
  generator?: TemplateGenerator;
  /** Port to listen on instead of the configured one (0: any free port). */
  port?: number;
}

export interface TritonService {
  /** Base URL of the API, when it runs here. */
  readonly url: string | undefined;
  readonly app: HttpApp | undefined;
  readonly database: TritonDatabase;
  readonly worker: Worker<GenerationJobData, GenerationResult> | undefined;
  readonly queue: GenerationQueue;
  readonly redis: Redis;
  /** Stops taking work, lets running jobs finish, closes every connection. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts triton-api and/or a worker against one Redis and one database. */
export async function startTriton(options: StartTritonOptions): Promise<TritonService> {
  const { common, triton, logger } = options;
  const redisUrl = common.redisUrl;
  if (!redisUrl) throw new Error('REDIS_URL is not set');
  const keyspace = createKeyspace(common.keyPrefix);
  const log = logger.child({ service: options.api ? 'triton-api' : 'triton-worker' });

  // Publishing waits for Redis to come back rather than losing an event.
  const redis = createRedis(redisUrl, { name: 'triton', logger: log, maxRetriesPerRequest: null });
  await waitForRedis(redis, redisUrl);
  log.info(`Redis: ${redactUrl(redisUrl)}`);

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
  if (options.worker) {
    const processor = createGenerationProcessor({
      store,
      publisher,
      generator: options.generator ?? new BuiltInTemplateGenerator(),
      logger: log,
      metrics,
      stepMs: triton.generationStepMs,
    });
    worker = new Worker<GenerationJobData, GenerationResult>(GENERATION_QUEUE, processor, {
      connection: redis,
      prefix: keyspace.queuePrefix,
      concurrency: triton.workerConcurrency,
    });
    worker.on('error', (err) => log.error({ err: err.message }, 'Worker error'));
    await worker.waitUntilReady();
    log.info(
      `Worker running (concurrency ${triton.workerConcurrency}, ${triton.generationStepMs} ms per template)`,
    );
  }

  let app: HttpApp | undefined;
  let url: string | undefined;
  if (options.api) {
    app = await buildTritonApi({
      store,
      queue,
      publisher,
      logger: log,
      registry,
      bodyLimit: common.bodyLimitBytes,
      readiness: {
        redis: () => redis.ping(),
        database: () => database.ping(),
      },
    });
    await app.listen({ host: common.host, port: options.port ?? triton.port });
    url = localUrl(common.host, boundPort(app, triton.port));
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
        await worker?.close();
        await queue.close();
        await database.close();
        await closeRedis(redis);
      })();
      return closing;
    },
  };
}
