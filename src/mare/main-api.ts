import { requireRedisUrl, runMain } from '../common/run-main.js';
import { startMare } from './mare-service.js';

// mare-api on its own: any number of them run behind a load balancer against one Redis.
runMain(async (config, logger) => {
  requireRedisUrl(config);
  return startMare({ common: config.common, mare: config.mare, logger });
});
