import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger, type Logger } from './logger.js';

/** Something `runMain` started and must stop on SIGINT/SIGTERM. */
export interface Closeable {
  /** Drains and closes; resolves once everything it started has stopped. */
  close(): Promise<void>;
}

/** A start-up failure the user can fix: printed as one line, without a stack. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** Signals within this long of the first one are copies of it, not a second request. */
const REPEATED_SIGNAL_WINDOW_MS = 1000;

/**
 * Runs an entry point: reads the configuration once (a bad value stops start-up with one
 * line naming it), starts, and on SIGINT/SIGTERM closes what was started and exits 0. A second
 * signal, a second or more after the first, exits at once.
 */
export function runMain(
  start: (config: Readonly<Config>, logger: Logger) => Promise<Closeable>,
): void {
  let config: Readonly<Config>;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger(config.common);
  let running: Closeable | undefined;
  let stopping = false;
  let firstSignalAt = 0;

  const stop = (signal: string) => {
    if (stopping) {
      // One Ctrl-C arrives several times within milliseconds: the terminal signals the whole
      // process group and wrappers (npm, tsx) forward it too. Only a later one forces the exit.
      if (Date.now() - firstSignalAt < REPEATED_SIGNAL_WINDOW_MS) return;
      logger.warn(`Received ${signal} again; exiting now`);
      process.exit(1);
    }
    stopping = true;
    firstSignalAt = Date.now();
    logger.info(`Received ${signal}; shutting down`);
    const done = running ? running.close() : Promise.resolve();
    done.then(
      () => {
        logger.info('Stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  start(config, logger).then(
    (started) => {
      running = started;
      if (stopping) void started.close().then(() => process.exit(0));
    },
    (err: unknown) => {
      if (err instanceof StartupError || err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
      } else {
        logger.fatal({ err }, 'Start-up failed');
      }
      process.exit(1);
    },
  );
}

/** The Redis URL a part needs when run alone, or a one-line explanation of how to get one. */
export function requireRedisUrl(config: Readonly<Config>): string {
  const url = config.common.redisUrl;
  if (!url) {
    throw new StartupError(
      'REDIS_URL is not set: point it at a Redis server (e.g. REDIS_URL=redis://127.0.0.1:6379, or REDIS_HOST, REDIS_PORT, REDIS_DB and REDIS_PASSWORD), or run `npm start`, which starts one.',
    );
  }
  return url;
}
