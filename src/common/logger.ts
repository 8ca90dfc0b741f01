import { pino, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import type { CommonConfig } from './config.js';
import { redactCredentials, serializeError } from './error-serializer.js';

export type { Logger };

/** Keys pino writes on every line itself: a logged object must not write them again. */
const LINE_KEYS = ['level', 'time'];

/** The keys a (child) logger writes on every line, read once per logger. */
const boundKeysOf = new WeakMap<Logger, ReadonlySet<string>>();

function boundKeys(logger: Logger): ReadonlySet<string> {
  let keys = boundKeysOf.get(logger);
  if (!keys) {
    keys = new Set([...LINE_KEYS, ...Object.keys(logger.bindings())]);
    boundKeysOf.set(logger, keys);
  }
  return keys;
}

/**
 * The object of one log call, made fit for the line: without keys the line already has (a child
 * logger's `job_id` logged again would appear twice, and JSON parsers silently keep one), and
 * with credentials hidden in its text.
 */
function fitObject(
  logger: Logger,
  obj: Record<string, unknown>,
  hasMessage: boolean,
): Record<string, unknown> {
  const bound = boundKeys(logger);
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    const duplicate = bound.has(key) || (hasMessage && key === 'msg');
    const secret =
      typeof value === 'string' &&
      (value.includes('://') ||
        value.includes('tek_') ||
        value.includes('eyJ') ||
        value.includes('token='));
    if (!duplicate && !secret) continue;
    out ??= { ...obj };
    if (duplicate) delete out[key];
    else out[key] = redactCredentials(value as string);
  }
  return out ?? obj;
}

/** What every logger, pretty or JSON, does to what it is given. */
const common: LoggerOptions = {
  base: undefined,
  serializers: { err: serializeError, error: serializeError },
  hooks: {
    logMethod(args, method) {
      const parts = args as unknown[];
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i];
        if (typeof part === 'string') parts[i] = redactCredentials(part);
      }
      const first = parts[0];
      if (typeof first === 'object' && first !== null && !(first instanceof Error)) {
        parts[0] = fitObject(this, first as Record<string, unknown>, typeof parts[1] === 'string');
      }
      method.apply(this, args);
    },
  },
};

/**
 * The process's root logger: human-readable on a terminal, JSON lines otherwise (or as
 * `LOG_FORMAT` says). Each part takes a child with its own `service` name. Errors are logged
 * through one serializer that hides credentials (URLs' passwords, Redis `AUTH` arguments), and
 * no line carries a key twice.
 */
export function createLogger(
  config: Pick<CommonConfig, 'logLevel' | 'logFormat'>,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  const human =
    config.logFormat === 'pretty' ||
    (config.logFormat === 'auto' && 'isTTY' in destination && destination.isTTY === true);
  const options = { ...common, level: config.logLevel };
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
