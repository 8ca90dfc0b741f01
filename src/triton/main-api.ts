import { requireRedisUrl, runMain } from '../common/run-main.js';
import { startTriton } from './triton-service.js';

// triton-api on its own (with a worker in-process when the database is embedded PGlite).
runMain(async (config, logger) => {
  requireRedisUrl(config);
  return startTriton({
    common: config.common,
    triton: config.triton,
    logger,
    api: true,
    worker: config.triton.inProcessWorker,
  });
});
