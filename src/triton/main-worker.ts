import { requireRedisUrl, runMain, StartupError } from '../common/run-main.js';
import { startTriton } from './triton-service.js';

// A triton worker on its own: any number of them run against one Redis and one Postgres.
runMain(async (config, logger) => {
  requireRedisUrl(config);
  if (!config.triton.databaseUrl) {
    throw new StartupError(
      'DATABASE_URL is not set: a separate worker needs a Postgres server (embedded PGlite belongs to one process; triton-api runs its worker in-process then).',
    );
  }
  return startTriton({
    common: config.common,
    triton: config.triton,
    logger,
    api: false,
    worker: true,
  });
});
