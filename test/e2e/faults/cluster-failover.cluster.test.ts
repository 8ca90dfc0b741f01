import { Cluster } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { createKeyspace } from '../../../src/contract/index.js';
import { clusterSlot } from '../../helpers/cluster-slot.js';
import { RedisCluster } from '../../helpers/redis-cluster.js';
import {
  expectEveryJobCompleted,
  startFailoverDrill,
  type FailoverDrill,
} from './failover-drill.js';

/**
 * Drill: on a Redis Cluster, the master holding the global history (and about a third of the
 * job channels) is killed with SIGKILL while 20 jobs run and two gateways serve their watchers.
 * Its replica takes over; the worker's publishes wait and are sent again; the gateways
 * subscribe again (sharded job channels on the new master, `triton:jobs:all` on another node)
 * and replay from history what they missed. Every watcher must get its job's terminal event,
 * each event at most once and in order, and no job may stay running.
 */

const JOBS = 20;
const keys = createKeyspace();

let cluster: RedisCluster | undefined;
let drill: FailoverDrill | undefined;
let reader: Cluster | undefined;

afterAll(async () => {
  reader?.disconnect();
  await drill?.close();
  await cluster?.close();
});

it(
  'every watcher gets its job’s terminal event after a master dies and its replica takes over',
  { timeout: 120_000 },
  async () => {
    cluster = await RedisCluster.start();
    drill = await startFailoverDrill(cluster, JOBS);

    const globalSlot = clusterSlot(keys.globalHistoryKey);
    const doomed = await cluster.masterOf(globalSlot);
    const ranges = (await cluster.slots()).filter((r) => r.master === doomed);
    const onDoomed = drill.jobIds.filter((id) => {
      const slot = clusterSlot(keys.jobChannel(id));
      return ranges.some((r) => r.from <= slot && slot <= r.to);
    });
    const failover = await cluster.killMaster(globalSlot);

    const { hostname, port } = new URL(cluster.url);
    reader = new Cluster([{ host: hostname, port: Number(port) }]);
    await expectEveryJobCompleted(drill, reader);
    // The drill took the path it means to: jobs in flight, some of them on the dead master.
    expect(drill.inFlight).toBeGreaterThan(JOBS);
    expect(onDoomed.length, 'jobs whose channel lived on the killed master').toBeGreaterThan(0);
    expect(failover.promoted).not.toBe(doomed);
  },
);
