import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.js';

export type { Redis };

export interface RedisConnectionOptions {
  /** Shown in logs and as the connection's `CLIENT SETNAME`. */
  name: string;
  logger: Logger;
  /** BullMQ's blocking connections need this null; others fail fast while disconnected. */
  maxRetriesPerRequest?: number | null;
  /** Extra ioredis options. */
  options?: RedisOptions;
}

/**
 * A Redis connection that reconnects by itself (capped exponential backoff) and logs its
 * state changes once each, not once per retry.
 */
export function createRedis(
  url: string,
  { name, logger, maxRetriesPerRequest = 3, options = {} }: RedisConnectionOptions,
): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), 2000),
    ...options,
  });
  let down = false;
  redis.on('ready', () => {
    if (down) logger.info({ redis: name }, `Redis connection "${name}" restored`);
    down = false;
  });
  redis.on('error', (err: Error) => {
    if (!down) logger.warn({ redis: name, err: err.message }, `Redis connection "${name}" failed`);
    down = true;
  });
  redis.on('end', () => {
    down = true;
  });
  return redis;
}

/** Resolves once the connection is ready, or rejects with a clear message after `timeoutMs`. */
export async function waitForRedis(redis: Redis, url: string, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis at ${redactUrl(url)} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** A URL with its password hidden, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** Quits gracefully, or disconnects when the server is unreachable. Safe to call twice. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
