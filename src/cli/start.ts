import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { loadConfig } from '../common/config.js';
import { redactUrl } from '../common/redis.js';
import { RedisServer, RedisServerError } from './redis-server.js';
import { runMain, StartupError, type Closeable } from '../common/run-main.js';
import { startMare } from '../mare/mare-service.js';
import { QUEUE_UI_PATH } from '../triton/api/queue-ui.js';
import { startTriton } from '../triton/triton-service.js';

/**
 * `npm start`: the whole system in one process, with no configuration needed. Without
 * REDIS_URL (or REDIS_HOST…) it runs `redis-server` (data and AOF under DATA_DIR/redis); without DATABASE_URL
 * it uses embedded PGlite under DATA_DIR/pglite. Then triton-api with its worker, and mare-api.
 */
runMain(async (initial, logger) => {
  const log = logger.child({ service: 'launcher' });
  const started: Closeable[] = [];
  const closeAll = async () => {
    for (const part of started.reverse()) await part.close();
  };

  try {
    let config = initial;
    let redisNote = config.common.redisUrlFrom ?? '';
    // Both APIs run here: the secret with which the gateway names its users to triton-api can
    // be made up for this run, unless the operator chose one.
    const overrides: Record<string, string> = {};
    if (!config.common.gatewaySecret) overrides.GATEWAY_SECRET = randomBytes(32).toString('hex');
    // Likewise the secret stream tokens are signed with: one gateway here, so any will do.
    if (!config.mare.streamTokenSecret) {
      overrides.STREAM_TOKEN_SECRET = randomBytes(32).toString('base64url');
    }
    if (!config.common.redisUrl) {
      const dir = path.join(config.common.dataDir, 'redis');
      let server: RedisServer;
      try {
        server = await RedisServer.start({ port: config.common.embeddedRedisPort, dir });
      } catch (err) {
        if (err instanceof RedisServerError) throw new StartupError(err.message);
        throw err;
      }
      started.push({ close: () => server.close() });
      log.info(`Started redis-server (pid ${server.pid}) on ${server.url}, data in ${dir}`);
      overrides.REDIS_URL = server.url;
      redisNote = `embedded redis-server, data in ${dir}`;
    }
    config = loadConfig({ ...process.env, ...overrides });

    const triton = await startTriton({
      common: config.common,
      triton: config.triton,
      logger,
      api: true,
      worker: true,
    });
    started.push(triton);
    const mare = await startMare({
      common: config.common,
      // mare-api talks to the triton-api started here, wherever it is bound.
      mare: { ...config.mare, tritonApiUrl: triton.url ?? config.mare.tritonApiUrl },
      logger,
    });
    started.push(mare);

    const redisUrl = config.common.redisUrl ?? '';
    log.info(
      [
        'The system is up:',
        `  triton-api  ${triton.url}   (clients, value propositions, jobs; worker in this process)`,
        `  mare-api    ${mare.url}  (submit, cache-first lookups, SSE; dashboard at ${mare.url}/)`,
        `  Redis       ${redactUrl(redisUrl)} (${redisNote})`,
        `  Postgres    ${triton.database.location}`,
        config.common.auth === 'on'
          ? '  Auth        on: API keys required (npx triton-events keys create --tenant NAME)'
          : '  Auth        off: anyone who reaches these ports may use them (AUTH=on requires API keys)',
        `API docs at ${triton.url}/docs and ${mare.url}/docs; metrics at /metrics on both.`,
        ...(config.triton.queueUi ? [`Queue UI at ${triton.url}${QUEUE_UI_PATH}`] : []),
        'Press Ctrl-C to stop everything.',
      ].join('\n'),
    );
    return { close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
});
