import rateLimit, {
  type FastifyRateLimitStore,
  type FastifyRateLimitStoreCtor,
  type RateLimitOptions,
} from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import { AppError, type Keyspace } from '../contract/index.js';
import type { HttpApp } from './http.js';
import type { RedisClient } from './redis.js';

/** The kinds of request that are limited, each with its own count per client. */
export type RateLimitKind = 'submit' | 'write';

/** How {@link registerRateLimits} counts, and where. */
export interface RateLimitsOptions {
  /** Job submissions per client per minute; 0 turns the limit off. */
  submitPerMinute: number;
  /** Other writes (clients, value propositions, cancellations) per client per minute; 0: off. */
  writePerMinute: number;
  /** Shared counters, so that every instance behind a load balancer enforces one limit. */
  redis: RedisClient;
  keyspace: Keyspace;
  /** Which API counts (`mare-api`, `triton-api`): each keeps its own counts. */
  api: string;
  /** Who a request counts against. @defaultValue the caller's address (`request.ip`) */
  clientOf?: (request: FastifyRequest) => string;
}

/** Route config that turns a limit on (empty: no limit). */
export type RouteLimit = { rateLimit?: RateLimitOptions };

const WINDOW_MS = 60_000;

const WHAT: Record<RateLimitKind, string> = {
  submit: 'job submissions',
  write: 'writes (new clients, value propositions, cancellations)',
};

/** Counts one request in its window: the count so far and the window's milliseconds left. */
const HIT_SCRIPT = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if current == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`;

type HitRedis = RedisClient & {
  rateLimitHit(key: string, windowMs: number): Promise<[number, number]>;
};

/**
 * The plugin's counters, kept in Redis under the keyspace's names, one count per kind of
 * request (the plugin would otherwise keep one per route: every write route would have a
 * budget of its own).
 */
function redisStore(
  redis: RedisClient,
  keyOf: (kind: string, client: string) => string,
): FastifyRateLimitStoreCtor {
  const hits = redis as HitRedis;
  if (typeof hits.rateLimitHit !== 'function') {
    redis.defineCommand('rateLimitHit', { numberOfKeys: 1, lua: HIT_SCRIPT });
  }
  class Store implements FastifyRateLimitStore {
    private kind = 'any';
    incr(
      client: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
    ): void {
      hits.rateLimitHit(keyOf(this.kind, client), WINDOW_MS).then(
        ([current, ttl]) => callback(null, { current, ttl }),
        (err: Error) => callback(err),
      );
    }
    child(routeOptions: object): FastifyRateLimitStore {
      const store = new Store();
      store.kind = (routeOptions as { kind?: string }).kind ?? 'any';
      return store;
    }
  }
  return Store;
}

/**
 * Registers the rate-limit plugin and returns the route config that limits each kind of
 * request. Over a limit: 429 `RATE_LIMITED` with `Retry-After`. When Redis cannot be reached,
 * requests pass rather than fail.
 */
export async function registerRateLimits(
  app: HttpApp,
  { submitPerMinute, writePerMinute, redis, keyspace, api, clientOf }: RateLimitsOptions,
): Promise<Record<RateLimitKind, RouteLimit>> {
  if (submitPerMinute <= 0 && writePerMinute <= 0) return { submit: {}, write: {} };
  await app.register(rateLimit, {
    global: false,
    store: redisStore(redis, (kind, client) => keyspace.rateLimitKey(`${api}:${kind}`, client)),
    skipOnError: true,
    ...(clientOf ? { keyGenerator: clientOf } : {}),
  });
  const limit = (kind: RateLimitKind, max: number): RouteLimit => {
    if (max <= 0) return {};
    const options: RateLimitOptions & { kind: RateLimitKind } = {
      kind,
      max,
      timeWindow: WINDOW_MS,
      errorResponseBuilder: (_request, context) =>
        new AppError(
          'RATE_LIMITED',
          `Too many ${WHAT[kind]}: at most ${context.max} per minute; retry in ${context.after}`,
          Math.max(1, Math.ceil(context.ttl / 1000)),
        ),
    };
    return { rateLimit: options };
  };
  return { submit: limit('submit', submitPerMinute), write: limit('write', writePerMinute) };
}
