import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger } from '../../src/common/logger.js';
import { CacherLease } from '../../src/mare/cacher-lease.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** The one-cacher lease between gateways, against a real redis-server, with short periods. */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let server: RedisServer;
let redis: Redis;
const leases: CacherLease[] = [];
const connections: Redis[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterEach(async () => {
  for (const lease of leases.splice(0)) await lease.close();
  for (const c of connections.splice(0)) c.disconnect();
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

/** A gateway's lease on a connection of its own; `events` records what it was told. */
function gateway(key: string, name: string, events: string[]) {
  const connection = new Redis(server.url, { maxRetriesPerRequest: 0 });
  connection.on('error', () => undefined);
  connections.push(connection);
  const lease = new CacherLease({
    redis: connection,
    key,
    logger,
    leaseMs: 400,
    renewMs: 100,
    onAcquired: () => events.push(`${name} caches`),
    onLost: () => events.push(`${name} stops`),
  });
  leases.push(lease);
  return { lease, connection };
}

const leaseKey = () => `test:${randomBytes(4).toString('hex')}:triton:mare:cacher`;

describe('CacherLease', () => {
  it('gives the lease to one gateway only, and to another at once when the holder closes', async () => {
    const key = leaseKey();
    const events: string[] = [];
    const a = gateway(key, 'a', events);
    const b = gateway(key, 'b', events);
    await a.lease.start();
    await b.lease.start();
    expect(a.lease.isHolder).toBe(true);
    expect(b.lease.isHolder).toBe(false);
    expect(await redis.get(key)).toBe(a.lease.holder);
    // Renewed: it outlives its lease period (five renewals of a 400 ms lease, 100 ms apart).
    let renewals = 0;
    let lastTtl = await redis.pttl(key);
    await waitFor('five renewals', async () => {
      const ttl = await redis.pttl(key);
      if (ttl > lastTtl) renewals++;
      lastTtl = ttl;
      return renewals >= 5;
    });
    expect(await redis.get(key)).toBe(a.lease.holder);
    expect(events).toEqual(['a caches']);

    await a.lease.close();
    await waitFor('b to take over', () => b.lease.isHolder);
    expect(events).toEqual(['a caches', 'a stops', 'b caches']);
  });

  it('passes to another gateway once a crashed holder’s lease lapses; the holder stops too', async () => {
    const key = leaseKey();
    const events: string[] = [];
    const a = gateway(key, 'a', events);
    const b = gateway(key, 'b', events);
    await a.lease.start();
    await b.lease.start();
    // a can no longer reach Redis: it cannot renew, and b takes over after the lease lapses.
    a.connection.disconnect();
    await waitFor('b to take over', () => b.lease.isHolder, { timeoutMs: 5000 });
    await waitFor('a to give up', () => !a.lease.isHolder, { timeoutMs: 5000 });
    expect(events.filter((e) => e.startsWith('a'))).toEqual(['a caches', 'a stops']);
    expect(await redis.get(key)).toBe(b.lease.holder);
  });

  it('stops when it finds another holder in its place', async () => {
    const key = leaseKey();
    const events: string[] = [];
    const a = gateway(key, 'a', events);
    await a.lease.start();
    await redis.set(key, 'someone else', 'PX', 10_000);
    await waitFor('a to stop', () => !a.lease.isHolder);
    expect(events).toEqual(['a caches', 'a stops']);
    expect(await redis.get(key)).toBe('someone else');
  });
});
