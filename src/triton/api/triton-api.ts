import cors from '@fastify/cors';
import type { Registry } from 'prom-client';
import type { ApiKeys } from '../../common/api-keys.js';
import { registerApiDocs } from '../../common/api-docs.js';
import { registerHealthRoutes, type ReadinessCheck } from '../../common/health.js';
import { createHttpApp, type HttpApp } from '../../common/http.js';
import type { Logger } from '../../common/logger.js';
import { registerMetricsRoute } from '../../common/metrics.js';
import { clientAddressOf } from '../../common/client-address.js';
import { registerRateLimits } from '../../common/rate-limit.js';
import { registerRequestAuth, requireAdmin } from '../../common/request-auth.js';
import type { Keyspace } from '../../contract/index.js';
import type { RedisClient } from '../../common/redis.js';
import type { TritonMetrics } from '../triton-metrics.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import type { GenerationQueue } from '../generation-queue.js';
import { QUEUE_UI_PATH, registerQueueUi, type QueueUiGuard } from './queue-ui.js';
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
   * {@link registerQueueUi}); with `auth`, the guard is an admin check. @defaultValue false
   */
  queueUi?: false | { guard?: QueueUiGuard };
  /**
   * With auth on: every route but health, docs and metrics needs an API key (or, from mare-api,
   * GATEWAY_SECRET with the caller's identity), and each caller sees its own tenant's records.
   * @defaultValue off
   */
  auth?: { keys: ApiKeys; gatewaySecret?: string | undefined };
  /** Origins whose pages may call the API from a browser. @defaultValue '*' */
  corsOrigins?: '*' | readonly string[];
  /** Bearer token `/metrics` requires (METRICS_TOKEN). @defaultValue none: open */
  metricsToken?: string | undefined;
}

/** triton-api: clients, value propositions, jobs and templates over HTTP. */
export async function buildTritonApi(deps: TritonApiDeps): Promise<HttpApp> {
  const app = createHttpApp({
    logger: deps.logger,
    bodyLimit: deps.bodyLimit,
    trustProxy: deps.trustProxy,
  });
  // strictPreflight off: a bare OPTIONS gets 204 rather than the plugin's own text/plain 400.
  const origins = deps.corsOrigins ?? '*';
  await app.register(cors, {
    origin: origins === '*' ? '*' : [...origins],
    strictPreflight: false,
  });
  registerRequestAuth(
    app,
    deps.auth && {
      ...deps.auth,
      accessByPrefix: { '/docs': 'public', [QUEUE_UI_PATH]: 'admin' },
    },
  );
  await registerApiDocs(app, {
    title: 'triton-api',
    description:
      'Clients, value propositions, template-generation jobs and templates. Job progress is published as events on Redis (triton:jobs:all, triton:jobs:{job_id}).',
  });
  registerMetricsRoute(app, deps.registry, 'triton', undefined, { token: deps.metricsToken });
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
  if (deps.queueUi) {
    const guard = deps.auth ? requireAdmin : deps.queueUi.guard;
    await registerQueueUi(app, { queue: deps.queue, ...(guard ? { guard } : {}) });
  }
  return app;
}
