import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { createLogger } from '../../src/common/logger.js';
import { createRedis, type Redis } from '../../src/common/redis.js';
import { createKeyspace, type Keyspace } from '../../src/contract/index.js';
import { CancellationWatcher, JobCancelled } from '../../src/triton/worker/cancellation-watcher.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/** The worker's cancellation watcher against a real redis-server; a key prefix per test. */

const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
let server: RedisServer;
let redis: Redis;
const watchers: CancellationWatcher[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = createRedis(server.url, { name: 'test', logger });
});

afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

interface Started {
  watcher: CancellationWatcher;
  keyspace: Keyspace;
  /** The watcher's own subscriber connection's id on the server, as it was when it started. */
  subscriberId: number;
}

/** Ids of the server's connections named as the watcher names its subscriber. */
async function subscriberIds(): Promise<number[]> {
  const list = String(await redis.client('LIST'));
  return list
    .split('\n')
    .filter((line) => / name=triton-cancellations /.test(line))
    .map((line) => Number(/\bid=(\d+)/.exec(line)?.[1]));
}

async function startWatcher(): Promise<Started> {
  const keyspace = createKeyspace(`test-${randomBytes(4).toString('hex')}:`);
  const before = new Set(await subscriberIds());
  const watcher = new CancellationWatcher({
    target: { url: server.url, cluster: false },
    redis,
    keyspace,
    logger,
  });
  watchers.push(watcher);
  await watcher.start();
  const subscriberId = (await subscriberIds()).find((id) => !before.has(id));
  if (subscriberId === undefined) throw new Error('the watcher opened no subscriber connection');
  return { watcher, keyspace, subscriberId };
}

const aborted = (signal: AbortSignal) => () => signal.aborted;

describe('CancellationWatcher', () => {
  it("aborts a watched job's signal with JobCancelled when its id arrives on the cancel channel", async () => {
    const { watcher, keyspace } = await startWatcher();
    const job = randomUUID();
    const other = randomUUID();
    const watch = watcher.watch(job);
    const otherWatch = watcher.watch(other);
    expect(watch.signal.aborted).toBe(false);

    await redis.publish(keyspace.cancelChannel, job);
    await waitFor('the job to be cancelled', aborted(watch.signal));
    expect(watch.signal.reason).toBeInstanceOf(JobCancelled);
    expect((watch.signal.reason as Error).message).toBe(`Job ${job} was cancelled`);
    expect(otherWatch.signal.aborted, 'another job runs on').toBe(false);
  });

  it('aborts at once a job whose cancel key was set before it was watched', async () => {
    const { watcher, keyspace } = await startWatcher();
    const job = randomUUID();
    await redis.set(keyspace.jobCancelKey(job), '1');
    const watch = watcher.watch(job);
    await waitFor('the job to be cancelled', aborted(watch.signal));
    expect(watch.signal.reason).toBeInstanceOf(JobCancelled);
  });

  it('says whether a job was asked to cancel', async () => {
    const { watcher, keyspace } = await startWatcher();
    const job = randomUUID();
    expect(await watcher.requested(job)).toBe(false);
    await redis.set(keyspace.jobCancelKey(job), '1');
    expect(await watcher.requested(job)).toBe(true);
  });

  it('notices a cancel key set while its subscription was down, once the connection comes back', async () => {
    const { watcher, keyspace, subscriberId } = await startWatcher();
    const job = randomUUID();
    const watch = watcher.watch(job);
    // Give the first key check time to answer, so that only the reconnection can notice the key.
    expect(await watcher.requested(job)).toBe(false);

    // The key is set and the connection cut at the same instant, and no message is sent: as a
    // cancellation whose message was published while the subscriber was away.
    await redis
      .multi()
      .set(keyspace.jobCancelKey(job), '1')
      .client('KILL', 'ID', subscriberId)
      .exec();
    await waitFor('the job to be cancelled', aborted(watch.signal));
    expect(watch.signal.reason).toBeInstanceOf(JobCancelled);

    // And it is subscribed again: messages reach it as before.
    await waitFor('the subscriber to be back', async () =>
      (await subscriberIds()).some((id) => id !== subscriberId),
    );
    const bystander = watcher.watch(randomUUID());
    const laterJob = randomUUID();
    const laterWatch = watcher.watch(laterJob);
    await waitFor('the message to arrive', async () => {
      await redis.publish(keyspace.cancelChannel, laterJob);
      return laterWatch.signal.aborted;
    });
    expect(bystander.signal.aborted).toBe(false);
  });

  it('stops watching a job once released', async () => {
    const { watcher, keyspace } = await startWatcher();
    const released = randomUUID();
    const marker = randomUUID();
    const releasedWatch = watcher.watch(released);
    const markerWatch = watcher.watch(marker);
    releasedWatch.release();

    await redis.publish(keyspace.cancelChannel, released);
    await redis.publish(keyspace.cancelChannel, marker);
    // Messages arrive in order: once the second took effect, the first was seen and ignored.
    await waitFor('the marker job to be cancelled', aborted(markerWatch.signal));
    expect(releasedWatch.signal.aborted).toBe(false);
  });

  it("keeps watching a job's new attempt when the attempt before it is released late", async () => {
    const { watcher, keyspace } = await startWatcher();
    const job = randomUUID();
    const first = watcher.watch(job);
    const second = watcher.watch(job);
    first.release();

    await redis.publish(keyspace.cancelChannel, job);
    await waitFor('the new attempt to be cancelled', aborted(second.signal));
    expect(second.signal.reason).toBeInstanceOf(JobCancelled);
  });

  it('closes its subscriber connection, and is safe to close twice', async () => {
    const { watcher, subscriberId } = await startWatcher();
    const first = watcher.close();
    const second = watcher.close();
    await Promise.all([first, second]);
    expect(second).toBe(first);
    await waitFor('the subscriber connection to end', async () =>
      (await subscriberIds()).every((id) => id !== subscriberId),
    );
    await expect(watcher.close()).resolves.toBeUndefined();
  });
});
