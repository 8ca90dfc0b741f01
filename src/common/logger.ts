import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { CommonConfig } from './config.js';

export type { Logger };

/**
 * The process's root logger: human-readable on a terminal, JSON lines otherwise (or as
 * `LOG_FORMAT` says). Each part takes a child with its own `service` name.
 */
export function createLogger(
  config: Pick<CommonConfig, 'logLevel' | 'logFormat'>,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  const human =
    config.logFormat === 'pretty' ||
    (config.logFormat === 'auto' && 'isTTY' in destination && destination.isTTY === true);
  const options = { level: config.logLevel, base: undefined };
  if (!human) return pino(options, destination);
  return pino(
    options,
    pretty({
      destination,
      sync: true,
      colorize: 'isTTY' in destination && destination.isTTY === true,
      translateTime: 'HH:MM:ss.l',
      ignore: 'pid,hostname',
      messageFormat: '[{service}] {msg}',
      hideObject: false,
    }),
  );
}
