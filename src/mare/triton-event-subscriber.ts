import { decodeEvent, EventDecodeError, type JobEvent, type Keyspace } from '../contract/index.js';
import type { Logger } from '../common/logger.js';
import { closeRedis, type RedisClient } from '../common/redis.js';

export interface TritonEventSubscriberOptions {
  /** A connection for this subscriber alone (it enters subscriber mode); closed by `close()`. */
  redis: RedisClient;
  keyspace: Keyspace;
  logger: Logger;
  /** Receives every valid event with its JSON exactly as published. */
  onEvent: (event: JobEvent, json: string) => void;
  /** Receives each message that is not a valid job event (it is otherwise ignored). */
  onInvalid?: (reason: string) => void;
  /** Called after the subscription is re-established following a lost connection. */
  onResubscribed?: () => void;
}

/**
 * The process's one Pub/Sub subscription: `SUBSCRIBE triton:jobs:all`, whatever the number of
 * SSE clients. Every job's events arrive here once and are decoded once.
 */
export class TritonEventSubscriber {
  private readonly options: TritonEventSubscriberOptions;
  private closing: Promise<void> | undefined;
  private subscribedOnce = false;

  constructor(options: TritonEventSubscriberOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    const { redis, keyspace, logger, onEvent, onInvalid, onResubscribed } = this.options;
    const channel = keyspace.allJobsChannel;
    redis.on('message', (from: string, message: string) => {
      if (from !== channel) return;
      let event: JobEvent;
      try {
        event = decodeEvent(message);
      } catch (err) {
        const reason = err instanceof EventDecodeError ? err.message : String(err);
        logger.warn(
          { reason, bytes: message.length },
          'Ignoring a malformed message on the events channel',
        );
        onInvalid?.(reason);
        return;
      }
      onEvent(event, message);
    });
    // ioredis re-subscribes by itself after a reconnect; history covers what was missed meanwhile.
    redis.on('ready', () => {
      if (!this.subscribedOnce || this.closing) return;
      logger.info(`Triton event subscriber resubscribed to ${channel}`);
      onResubscribed?.();
    });
    await redis.subscribe(channel);
    this.subscribedOnce = true;
    logger.info({ channel }, 'Triton event subscriber started successfully');
  }

  /** Unsubscribes and closes the connection. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { redis, keyspace } = this.options;
      if (redis.status === 'ready')
        await redis.unsubscribe(keyspace.allJobsChannel).catch(() => undefined);
      await closeRedis(redis);
    })();
    return this.closing;
  }
}
