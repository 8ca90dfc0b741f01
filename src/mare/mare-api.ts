import cors from '@fastify/cors';
import type { Registry } from 'prom-client';
import { registerHealthRoutes, type ReadinessCheck } from '../common/health.js';
import { createHttpApp, type HttpApp } from '../common/http.js';
import { registerMetricsRoute } from '../common/metrics.js';
import type { MareContext } from './mare-context.js';
import { registerJobRoutes } from './routes/job-routes.js';
import { registerSseRoutes } from './routes/sse-routes.js';

export interface MareApiOptions {
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  bodyLimit?: number;
}

/** mare-api: submissions, cache-first lookups, SSE streams, health and metrics. */
export async function buildMareApi(ctx: MareContext, options: MareApiOptions): Promise<HttpApp> {
  const app = createHttpApp({ logger: ctx.logger, bodyLimit: options.bodyLimit });
  await app.register(cors, { origin: '*', exposedHeaders: ['x-cache', 'retry-after'] });
  registerMetricsRoute(app, options.registry, 'mare');
  registerHealthRoutes(app, 'mare-api', options.readiness);
  registerJobRoutes(app, ctx);
  registerSseRoutes(app, ctx);
  return app;
}
