import { decodeEvent, EventDecodeError, type JobEvent, type Keyspace } from '../contract/index.js';
import type { Logger } from '../common/logger.js';
import { RedisSubscriber } from '../common/redis-subscriber.js';
import type { RedisTarget } from '../common/redis.js';

/** Which channel an event came by. */
export type EventRoute = 'job' | 'all';

/** Where a gateway's events come from, and who is told about them. */
export interface TritonEventSubscriberOptions {
  /** The Redis carrying triton's events; the subscriber opens its own connections to it. */
  target: RedisTarget;
  keyspace: Keyspace;
  logger: Logger;
  /** Receives every valid event with its JSON exactly as published, and the channel it came by. */
  onEvent: (event: JobEvent, json: string, route: EventRoute) => void;
  /** Receives each message that is not a valid job event (it is otherwise ignored). */
  onInvalid?: (reason: string) => void;
  /**
   * The subscriptions of a route were lost and are confirmed again: what was published
   * meanwhile is to be read from history.
   */
  onResubscribed?: (route: EventRoute) => void;
  /** Called with the number of job channels subscribed whenever it changes. */
  onJobChannels?: (count: number) => void;
}

/**
 * A gateway's subscriptions, made on demand: a job's channel while someone here watches the
 * job (`SUBSCRIBE triton:jobs:{id}`, on a cluster `SSUBSCRIBE`, which reaches only the master of
 * the channel's slot), and `triton:jobs:all` while someone here watches every job (all-jobs
 * streams, the results cacher). A gateway thus receives only the events its clients watch, and
 * each arrives once per route and is decoded once.
 */
export class TritonEventSubscriber {
  private readonly o: TritonEventSubscriberOptions;
  private readonly subscriber: RedisSubscriber;
  private readonly jobChannelPrefix: string;

  constructor(options: TritonEventSubscriberOptions) {
    this.o = options;
    const { keyspace, logger, target } = options;
    this.jobChannelPrefix = keyspace.jobChannel('');
    this.subscriber = new RedisSubscriber({
      target,
      name: 'mare-subscriber',
      logger,
      onMessage: (channel, message) => this.receive(channel, message),
      onRestored: (kind) => {
        const route: EventRoute = kind === 'sharded' ? 'job' : 'all';
        logger.info(`Triton event subscriber resubscribed (${route} events)`);
        options.onResubscribed?.(route);
      },
    });
  }

  /** Waits for Redis (rejecting with a clear message when it does not answer). */
  async start(): Promise<void> {
    await this.subscriber.ready();
    this.o.logger.info('Triton event subscriber started successfully');
  }

  /** Watches a job's channel; resolves once subscribed. Pair with {@link unwatchJob}. */
  async watchJob(jobId: string): Promise<void> {
    const held = this.subscriber.hold(this.o.keyspace.jobChannel(jobId), 'sharded');
    this.o.onJobChannels?.(this.subscriber.heldCount('sharded'));
    await held;
  }

  /** Lets a job's channel go (the last watcher's call unsubscribes). */
  unwatchJob(jobId: string): void {
    this.subscriber.release(this.o.keyspace.jobChannel(jobId));
    this.o.onJobChannels?.(this.subscriber.heldCount('sharded'));
  }

  /** Watches the all-jobs channel; resolves once subscribed. Pair with {@link unwatchAll}. */
  watchAll(): Promise<void> {
    return this.subscriber.hold(this.o.keyspace.allJobsChannel, 'classic');
  }

  /** Lets the all-jobs channel go (the last watcher's call unsubscribes). */
  unwatchAll(): void {
    this.subscriber.release(this.o.keyspace.allJobsChannel);
  }

  /** Unsubscribes and closes the connections. Safe to call twice. */
  close(): Promise<void> {
    return this.subscriber.close();
  }

  private receive(channel: string, message: string): void {
    const { keyspace, logger, onEvent, onInvalid } = this.o;
    const route: EventRoute | undefined =
      channel === keyspace.allJobsChannel
        ? 'all'
        : channel.startsWith(this.jobChannelPrefix)
          ? 'job'
          : undefined;
    if (!route) return;
    let event: JobEvent;
    try {
      event = decodeEvent(message);
      if (route === 'job' && channel !== keyspace.jobChannel(event.job_id)) {
        throw new EventDecodeError(`an event of job ${event.job_id} on ${channel}`);
      }
    } catch (err) {
      // A message that is not an event is bad input, said in `reason`; anything else thrown
      // here is a fault of ours, logged with its stack.
      const decoding = err instanceof EventDecodeError;
      const reason = decoding ? err.message : String(err);
      logger.warn(
        { reason, bytes: message.length, channel, ...(decoding ? {} : { err }) },
        'Ignoring a malformed message on the events channel',
      );
      onInvalid?.(reason);
      return;
    }
    onEvent(event, message, route);
  }
}
