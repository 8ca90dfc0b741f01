import { startSystem } from '../helpers/system.js';
import { seedWalkthrough } from './seed-walkthrough-cases.js';

/** The original system's testing guide on a single redis-server. */
seedWalkthrough(async () => ({
  system: await startSystem({ env: { GENERATION_STEP_MS: '40' } }),
  cluster: false,
}));
