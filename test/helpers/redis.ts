import { Redis } from 'ioredis';
import { RedisServer } from '../../src/cli/redis-server.js';
import { sentinelOptionsOf } from '../../src/common/redis.js';
import { freePort } from './ports.js';

/** A redis-server of the test's own, on a free port, without persistence. */
export async function startRedis(): Promise<RedisServer> {
  let lastError: unknown;
  // Another test file may grab the same free port first: try again on another.
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await RedisServer.start({ port: await freePort() });
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/**
 * A plain connection to the server `url` names, as a test reads and subscribes: to the server
 * itself, or, for a `redis+sentinel://` URL, to the master the sentinels name.
 */
export function connectTo(url: string): Redis {
  const sentinel = sentinelOptionsOf(url);
  return sentinel ? new Redis(sentinel) : new Redis(url);
}
