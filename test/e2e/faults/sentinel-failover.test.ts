import { afterAll, expect, it } from 'vitest';
import { connectTo } from '../../helpers/redis.js';
import { RedisSentinel } from '../../helpers/redis-sentinel.js';
import {
  expectEveryJobCompleted,
  startFailoverDrill,
  type FailoverDrill,
} from './failover-drill.js';

/**
 * Drill: behind Redis Sentinel (a master, a replica, three sentinels), the master is killed with
 * SIGKILL while 20 jobs run and two gateways serve their watchers. The sentinels promote the
 * replica; every connection of the worker and the gateways asks them where the master now is
 * and reconnects there; publishes are sent again, subscriptions made again, and what Pub/Sub
 * dropped is replayed from history. Every watcher must get its job's terminal event, each event
 * at most once and in order, and every job must complete.
 */

const JOBS = 20;

let sentinel: RedisSentinel | undefined;
let drill: FailoverDrill | undefined;

afterAll(async () => {
  await drill?.close();
  await sentinel?.close();
});

it(
  'every watcher gets its job’s terminal event after the master dies and the sentinels promote its replica',
  { timeout: 120_000 },
  async () => {
    sentinel = await RedisSentinel.start();
    drill = await startFailoverDrill(sentinel, JOBS);
    const failover = await sentinel.killMaster();

    const reader = connectTo(sentinel.url);
    try {
      await expectEveryJobCompleted(drill, reader);
    } finally {
      reader.disconnect();
    }
    // The drill took the path it means to: jobs in flight when the master died.
    expect(drill.inFlight).toBeGreaterThan(JOBS / 2);
    expect(failover.promoted).not.toBe(failover.killed);
    expect(await sentinel.masterPort()).toBe(failover.promoted);
  },
);
