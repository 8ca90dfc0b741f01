import { createHash, timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { AppError } from '../contract/index.js';
import { sendError, type HttpApp } from './http.js';

/**
 * A service's own Prometheus registry, with Node's process metrics (unprefixed, as
 * prom-client names them); every metric in it carries the label `service`.
 */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Latency buckets from 100 µs to 10 s: SSE delivery and cached lookups live at the low end. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Request durations by method, route pattern and status code. */
export type HttpDurationHistogram = Histogram<'method' | 'route' | 'status_code'>;

/** `{prefix}_http_request_duration_seconds`, by method, route pattern and status code. */
export function createHttpDurationHistogram(
  registry: Registry,
  prefix: string,
): HttpDurationHistogram {
  return new Histogram({
    name: `${prefix}_http_request_duration_seconds`,
    help: 'HTTP request duration by method, route and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Serves `GET /metrics` and times every request by route (the route's pattern, not its URL,
 * so ids never explode the label set), in `duration` or a histogram made for `prefix`. With a
 * `token` (METRICS_TOKEN), `/metrics` answers only `Authorization: Bearer <token>`; it needs no
 * API key either way, so that Prometheus scrapes it with the one credential.
 */
export function registerMetricsRoute(
  app: HttpApp,
  registry: Registry,
  prefix: string,
  duration: HttpDurationHistogram = createHttpDurationHistogram(registry, prefix),
  { token }: { token?: string | undefined } = {},
): void {
  const expected = token === undefined ? undefined : digest(`Bearer ${token}`);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    duration.observe(
      { method: request.method, route, status_code: reply.statusCode },
      reply.elapsedTime / 1000,
    );
    done();
  });
  app.get(
    '/metrics',
    { schema: { hide: true }, config: { access: 'public' } },
    async (request, reply) => {
      const given = request.headers.authorization;
      // Compared as digests, in constant time: equal lengths, and no timing to guess it by.
      if (expected && !(typeof given === 'string' && timingSafeEqual(digest(given), expected))) {
        return sendError(
          reply.header('www-authenticate', 'Bearer realm="metrics"'),
          new AppError(
            'UNAUTHORIZED',
            'Metrics need the metrics token: Authorization: Bearer <METRICS_TOKEN>',
          ),
        );
      }
      const body = await registry.metrics();
      return reply.type(registry.contentType).send(body);
    },
  );
}
