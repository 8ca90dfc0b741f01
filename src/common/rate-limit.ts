import rateLimit from '@fastify/rate-limit';
import { AppError, createKeyspace } from '../contract/index.js';
import type { HttpApp } from './http.js';
import type { RedisClient } from './redis.js';

export interface SubmitRateLimitOptions {
  /** Submissions per client address per minute; 0 turns the limit off. */
  perMinute: number;
  /** Shared counters, so that every instance behind a load balancer enforces one limit. */
  redis: RedisClient;
  /** Prefix of the counters' keys (the deployment's key prefix). */
  keyPrefix: string;
}

/**
 * Registers the rate-limit plugin (off by default) and returns the route config that turns it
 * on for job submissions. Over the limit: 429 `RATE_LIMITED` with `Retry-After`. When Redis
 * cannot be reached, requests pass rather than fail.
 */
export async function registerSubmitRateLimit(
  app: HttpApp,
  { perMinute, redis, keyPrefix }: SubmitRateLimitOptions,
): Promise<{ rateLimit?: { max: number; timeWindow: number } }> {
  if (perMinute <= 0) return {};
  await app.register(rateLimit, {
    global: false,
    redis,
    nameSpace: createKeyspace(keyPrefix).rateLimitPrefix,
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new AppError(
        'RATE_LIMITED',
        `Too many job submissions: at most ${context.max} per minute; retry in ${context.after}`,
        Math.max(1, Math.ceil(context.ttl / 1000)),
      ),
  });
  return { rateLimit: { max: perMinute, timeWindow: 60_000 } };
}
