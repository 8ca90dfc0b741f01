import { RedisCluster } from '../helpers/redis-cluster.js';
import { startSystem } from '../helpers/system.js';
import { seedWalkthrough } from './seed-walkthrough-cases.js';

/**
 * The original system's testing guide on a Redis Cluster (three masters, a replica each): the same
 * `REDIS_URL` form, naming one node; job channels are sharded, `triton:jobs:all` is not.
 */
seedWalkthrough(async () => {
  const cluster = await RedisCluster.start();
  const system = await startSystem({ redis: cluster, env: { GENERATION_STEP_MS: '40' } });
  return {
    system: {
      ...system,
      close: async () => {
        await system.close();
        await cluster.close();
      },
    },
    cluster: true,
  };
});
