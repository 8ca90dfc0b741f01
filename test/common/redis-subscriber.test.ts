import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger } from '../../src/common/logger.js';
import { RedisSubscriber, type ChannelKind } from '../../src/common/redis-subscriber.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** Held Pub/Sub subscriptions against a real redis-server, restarted in one test. */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let server: RedisServer;
let redis: Redis;
const subscribers: RedisSubscriber[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
});

afterEach(async () => {
  for (const s of subscribers.splice(0)) await s.close();
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

function subscriber() {
  const received: Array<[string, string]> = [];
  const restored: ChannelKind[] = [];
  const s = new RedisSubscriber({
    target: { url: server.url, cluster: false },
    name: 'test-subscriber',
    logger,
    onMessage: (channel, message) => received.push([channel, message]),
    onRestored: (kind) => restored.push(kind),
  });
  subscribers.push(s);
  return { s, received, restored };
}

const channel = () => `test:${randomBytes(4).toString('hex')}`;

async function subscribersOf(name: string): Promise<number> {
  const [, count] = (await redis.pubsub('NUMSUB', name)) as [string, number];
  return Number(count);
}

describe('RedisSubscriber', () => {
  it('subscribes on the first hold, resolving once Redis confirmed it, and unsubscribes on the last release', async () => {
    const { s, received } = subscriber();
    const name = channel();
    await Promise.all([s.hold(name, 'sharded'), s.hold(name, 'sharded')]);
    // Confirmed: a message published right now arrives.
    await redis.publish(name, 'one');
    await waitFor('the message', () => received.length === 1);
    expect(received).toEqual([[name, 'one']]);
    expect(s.heldCount('sharded')).toBe(1);
    s.release(name);
    expect(await subscribersOf(name)).toBe(1);
    s.release(name);
    await waitFor('the unsubscription', async () => (await subscribersOf(name)) === 0);
    expect(s.heldCount('sharded')).toBe(0);
  });

  it('keeps a subscription that is released and held again at once', async () => {
    const { s, received } = subscriber();
    const name = channel();
    const first = s.hold(name, 'classic');
    s.release(name);
    await Promise.all([first, s.hold(name, 'classic')]);
    expect(await subscribersOf(name)).toBe(1);
    await redis.publish(name, 'still here');
    await waitFor('the message', () => received.length === 1);
  });

  it('subscribes again after the server restarts, and says so for the kind it held, once confirmed', async () => {
    const own = await startRedis();
    const publisher = new Redis(own.url, { maxRetriesPerRequest: null });
    const received: string[] = [];
    const restored: ChannelKind[] = [];
    const s = new RedisSubscriber({
      target: { url: own.url, cluster: false },
      name: 'test-subscriber',
      logger,
      onMessage: (_channel, message) => received.push(message),
      onRestored: (kind) => restored.push(kind),
    });
    try {
      const name = channel();
      await s.hold(name, 'sharded');
      await own.kill();
      const again = await RedisServer.start({ port: own.port });
      try {
        await waitFor('the subscription restored', () => restored.length > 0, {
          timeoutMs: 15_000,
        });
        // Only the kind that had a channel held is reported.
        expect(restored).toEqual(['sharded']);
        await publisher.publish(name, 'after the restart');
        await waitFor('the message', () => received.includes('after the restart'));
      } finally {
        await again.close();
      }
    } finally {
      publisher.disconnect();
      await s.close();
    }
  });
});
