import cors from '@fastify/cors';
import type { Registry } from 'prom-client';
import { registerApiDocs } from '../../common/api-docs.js';
import { registerHealthRoutes, type ReadinessCheck } from '../../common/health.js';
import { createHttpApp, type HttpApp } from '../../common/http.js';
import type { Logger } from '../../common/logger.js';
import { registerMetricsRoute } from '../../common/metrics.js';
import { clientAddressOf } from '../../common/client-address.js';
import { registerRateLimits } from '../../common/rate-limit.js';
import type { Keyspace } from '../../contract/index.js';
import type { RedisClient } from '../../common/redis.js';
import type { TritonMetrics } from '../triton-metrics.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import type { GenerationQueue } from '../generation-queue.js';
import { registerQueueUi, type QueueUiGuard } from './queue-ui.js';
import { registerClientRoutes } from './routes/client-routes.js';
import { registerJobRoutes } from './routes/job-routes.js';
import { registerTemplateRoutes } from './routes/template-routes.js';

/** What triton-api's HTTP server is built from. */
export interface TritonApiDeps {
  store: TritonStore;
  queue: GenerationQueue;
  publisher: EventPublisher;
  /** Connection for cancellation requests (a key and a channel). */
  redis: RedisClient;
  keyspace: Keyspace;
  logger: Logger;
  registry: Registry;
  /** Checks `/ready` runs, by the name it reports. */
  readiness: Record<string, ReadinessCheck>;
  /** Largest accepted body. @defaultValue 64 KiB */
  bodyLimit?: number;
  /** Peers trusted to name the client (X-Forwarded-For). @defaultValue none */
  trustProxy?: boolean | string;
  metrics?: TritonMetrics;
  /** Limits per client per minute, counted in `redis`. */
  rateLimit?: {
    submitPerMinute: number;
    writePerMinute: number;
    /**
     * Shared with mare-api, which sends it with the end user's address: such requests count
     * against that user rather than against the gateway.
     */
    gatewaySecret?: string | undefined;
  };
  /**
   * Serve the queue UI at /admin/queues, behind `guard` when one is given (see
   * {@link registerQueueUi}). @defaultValue false
   */
  queueUi?: false | { guard?: QueueUiGuard };
}

/** triton-api: clients, value propositions, jobs and templates over HTTP. */
export async function buildTritonApi(deps: TritonApiDeps): Promise<HttpApp> {
  const app = createHttpApp({
    logger: deps.logger,
    bodyLimit: deps.bodyLimit,
    trustProxy: deps.trustProxy,
  });
  // strictPreflight off: a bare OPTIONS gets 204 rather than the plugin's own text/plain 400.
  await app.register(cors, { origin: '*', strictPreflight: false });
  await registerApiDocs(app, {
    title: 'triton-api',
    description:
      'Clients, value propositions, template-generation jobs and templates. Job progress is published as events on Redis (triton:jobs:all, triton:jobs:{job_id}).',
  });
  registerMetricsRoute(app, deps.registry, 'triton');
  const limits = deps.rateLimit
    ? await registerRateLimits(app, {
        submitPerMinute: deps.rateLimit.submitPerMinute,
        writePerMinute: deps.rateLimit.writePerMinute,
        redis: deps.redis,
        keyspace: deps.keyspace,
        api: 'triton-api',
        clientOf: clientAddressOf(deps.rateLimit.gatewaySecret),
      })
    : { submit: {}, write: {} };
  registerHealthRoutes(app, 'triton-api', deps.readiness);
  registerClientRoutes(app, deps, limits.write);
  registerJobRoutes(app, deps, limits);
  registerTemplateRoutes(app, deps);
  if (deps.queueUi) await registerQueueUi(app, { queue: deps.queue, ...deps.queueUi });
  return app;
}
