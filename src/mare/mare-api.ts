import cors from '@fastify/cors';
import type { Registry } from 'prom-client';
import type { ApiKeys } from '../common/api-keys.js';
import { registerApiDocs } from '../common/api-docs.js';
import { registerHealthRoutes, type ReadinessCheck } from '../common/health.js';
import { createHttpApp, type HttpApp, type HttpAppOptions } from '../common/http.js';
import { registerMetricsRoute, type HttpDurationHistogram } from '../common/metrics.js';
import { registerRateLimits, type RateLimitsOptions } from '../common/rate-limit.js';
import { registerRequestAuth } from '../common/request-auth.js';
import { CorsPolicy } from './cors-policy.js';
import type { MareContext } from './mare-context.js';
import { registerAuthRoutes } from './routes/auth-routes.js';
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
  /** Which origins' pages may read answers. @defaultValue any */
  cors?: CorsPolicy;
  /**
   * With auth on: every route but health, docs, metrics and the dashboard's files needs an API
   * key (the SSE routes also take a stream token, issued by `ctx.streamTokens`).
   * @defaultValue off
   */
  keys?: ApiKeys;
  /** Bearer token `/metrics` requires (METRICS_TOKEN). @defaultValue none: open */
  metricsToken?: string | undefined;
}

/** mare-api: submissions, cache-first lookups, SSE streams, health and metrics. */
export async function buildMareApi(ctx: MareContext, options: MareApiOptions): Promise<HttpApp> {
  const app = createHttpApp({
    logger: ctx.logger,
    bodyLimit: options.bodyLimit,
    trustProxy: options.trustProxy,
    fastPath: options.fastPath,
  });
  await app.register(cors, (options.cors ?? new CorsPolicy()).pluginOptions());
  registerRequestAuth(
    app,
    options.keys && {
      keys: options.keys,
      ...(ctx.streamTokens ? { streamTokens: ctx.streamTokens } : {}),
      accessByPrefix: { '/docs': 'public' },
    },
  );
  await registerApiDocs(app, {
    title: 'mare-api',
    description:
      'Gateway to triton: submit template-generation jobs, look up their status (cache first), and follow them live with Server-Sent Events instead of polling.',
  });
  registerMetricsRoute(app, options.registry, 'mare', options.httpDuration, {
    token: options.metricsToken,
  });
  registerHealthRoutes(app, 'mare-api', options.readiness);
  const limits = options.rateLimit
    ? await registerRateLimits(app, { ...options.rateLimit, api: 'mare-api' })
    : { submit: {}, write: {} };
  registerJobRoutes(app, ctx, limits);
  registerSseRoutes(app, ctx);
  registerAuthRoutes(app, ctx);
  registerWebRoutes(app);
  return app;
}
