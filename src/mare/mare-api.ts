import cors from '@fastify/cors';
import type { Registry } from 'prom-client';
import { registerApiDocs } from '../common/api-docs.js';
import { registerHealthRoutes, type ReadinessCheck } from '../common/health.js';
import { createHttpApp, type HttpApp, type HttpAppOptions } from '../common/http.js';
import { registerMetricsRoute, type HttpDurationHistogram } from '../common/metrics.js';
import { registerRateLimits, type RateLimitsOptions } from '../common/rate-limit.js';
import { CORS_EXPOSED_HEADERS, CORS_ORIGIN } from './cors-policy.js';
import type { MareContext } from './mare-context.js';
import { registerJobRoutes } from './routes/job-routes.js';
import { registerSseRoutes } from './routes/sse-routes.js';
import { registerWebRoutes } from './routes/web-routes.js';

/** What mare-api's HTTP server is built with, besides the routes' shared {@link MareContext}. */
export interface MareApiOptions {
  /** The registry `/metrics` serves. */
  registry: Registry;
  /** Checks `/ready` runs, by the name it reports. */
  readiness: Record<string, ReadinessCheck>;
  /** Largest accepted body. @defaultValue 64 KiB */
  bodyLimit?: number;
  /** Peers trusted to name the client (X-Forwarded-For). @defaultValue false */
  trustProxy?: boolean | string;
  /** Times requests by route; shared with the fast path, which answers some before routing. */
  httpDuration?: HttpDurationHistogram;
  /** Answers cached lookups before routing (see `createCachedLookupFastPath`). */
  fastPath?: HttpAppOptions['fastPath'];
  /** Limits per client address per minute, counted in Redis. */
  rateLimit?: Omit<RateLimitsOptions, 'api' | 'clientOf'>;
}

/** mare-api: submissions, cache-first lookups, SSE streams, health and metrics. */
export async function buildMareApi(ctx: MareContext, options: MareApiOptions): Promise<HttpApp> {
  const app = createHttpApp({
    logger: ctx.logger,
    bodyLimit: options.bodyLimit,
    trustProxy: options.trustProxy,
    fastPath: options.fastPath,
  });
  // strictPreflight off: a bare OPTIONS gets 204 rather than the plugin's own text/plain 400.
  await app.register(cors, {
    origin: CORS_ORIGIN,
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    strictPreflight: false,
  });
  await registerApiDocs(app, {
    title: 'mare-api',
    description:
      'Gateway to triton: submit template-generation jobs, look up their status (cache first), and follow them live with Server-Sent Events instead of polling.',
  });
  registerMetricsRoute(app, options.registry, 'mare', options.httpDuration);
  registerHealthRoutes(app, 'mare-api', options.readiness);
  const limits = options.rateLimit
    ? await registerRateLimits(app, { ...options.rateLimit, api: 'mare-api' })
    : { submit: {}, write: {} };
  registerJobRoutes(app, ctx, limits);
  registerSseRoutes(app, ctx);
  registerWebRoutes(app);
  return app;
}
