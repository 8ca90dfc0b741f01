import { RedisServer } from '../../src/cli/redis-server.js';
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
