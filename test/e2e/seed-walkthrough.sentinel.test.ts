import { RedisSentinel } from '../helpers/redis-sentinel.js';
import { startSystem } from '../helpers/system.js';
import { seedWalkthrough } from './seed-walkthrough-cases.js';

/**
 * The original system's testing guide on Redis Sentinel (a master, a replica, three sentinels):
 * `REDIS_URL=redis+sentinel://…/<master name>`, every connection made to whichever server the
 * sentinels name as master.
 */
seedWalkthrough(async () => {
  const sentinel = await RedisSentinel.start();
  const system = await startSystem({ redis: sentinel, env: { GENERATION_STEP_MS: '40' } });
  return {
    system: {
      ...system,
      close: async () => {
        await system.close();
        await sentinel.close();
      },
    },
    cluster: false,
  };
});
