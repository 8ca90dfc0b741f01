import type { Keyspace } from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import { RedisSubscriber } from '../../common/redis-subscriber.js';
import type { RedisClient, RedisTarget } from '../../common/redis.js';
import { RepeatedErrorLog } from '../../common/repeated-error-log.js';

/** The reason a job's signal aborts with when someone cancelled it. */
export class JobCancelled extends Error {
  override readonly name = 'JobCancelled';
  constructor(jobId: string) {
    super(`Job ${jobId} was cancelled`);
  }
}

/** One running job's view of cancellation. */
export interface CancellationWatch {
  /** Aborts (with a {@link JobCancelled}) as soon as someone cancels the job. */
  readonly signal: AbortSignal;
  /** Stops watching; call when the job's attempt ends. */
  release(): void;
}

/** What watching for cancellations needs. */
export interface CancellationWatcherOptions {
  /** The Redis carrying the cancellation channel: the watcher subscribes on its own connection. */
  target: RedisTarget;
  /** A connection for reading cancellation keys; its owner closes it. */
  redis: RedisClient;
  keyspace: Keyspace;
  logger: Logger;
}

/**
 * Stops a worker's running jobs when someone cancels them, from any process: one subscription
 * per worker process to the cancellation channel, plus the cancellation key of each job, read
 * when it starts being watched and again whenever the subscription comes back (a message sent
 * while it was down is lost; the key is not).
 */
export class CancellationWatcher {
  private readonly o: CancellationWatcherOptions;
  private readonly running = new Map<string, AbortController>();
  private readonly subscriber: RedisSubscriber;
  private closing: Promise<void> | undefined;
  private readonly errors: RepeatedErrorLog;

  constructor(options: CancellationWatcherOptions) {
    this.o = options;
    this.errors = new RepeatedErrorLog(options.logger);
    const { keyspace } = options;
    this.subscriber = new RedisSubscriber({
      target: options.target,
      name: 'triton-cancellations',
      logger: options.logger,
      onMessage: (channel, jobId) => {
        if (channel === keyspace.cancelChannel) this.cancel(jobId);
      },
      // A message sent while the subscription was down is lost; the key is not.
      onRestored: () => {
        if (!this.closing) void this.checkAll();
      },
    });
  }

  /** Subscribes to the cancellation channel. */
  async start(): Promise<void> {
    const { keyspace, logger } = this.o;
    await this.subscriber.ready();
    await this.subscriber.hold(keyspace.cancelChannel, 'classic');
    logger.debug({ channel: keyspace.cancelChannel }, 'Listening for cancellations');
  }

  /** Watches one job while its attempt runs. */
  watch(jobId: string): CancellationWatch {
    const controller = new AbortController();
    this.running.set(jobId, controller);
    void this.check([jobId]);
    return {
      signal: controller.signal,
      release: () => {
        if (this.running.get(jobId) === controller) this.running.delete(jobId);
      },
    };
  }

  /** Whether someone asked to cancel the job (its key is set). */
  async requested(jobId: string): Promise<boolean> {
    return (await this.o.redis.exists(this.o.keyspace.jobCancelKey(jobId))) === 1;
  }

  /** Unsubscribes and closes the subscriber connection. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.subscriber.close();
    return this.closing;
  }

  private cancel(jobId: string): void {
    const controller = this.running.get(jobId);
    if (controller && !controller.signal.aborted) controller.abort(new JobCancelled(jobId));
  }

  private checkAll(): Promise<void> {
    return this.check([...this.running.keys()]);
  }

  private async check(jobIds: string[]): Promise<void> {
    if (jobIds.length === 0) return;
    try {
      // One read per job: on a cluster each job's key lives in its own slot.
      const found = await Promise.all(jobIds.map((id) => this.requested(id)));
      found.forEach((requested, i) => {
        const jobId = jobIds[i];
        if (requested && jobId !== undefined) this.cancel(jobId);
      });
    } catch (err) {
      this.errors.warn(err, 'Could not check cancellation keys');
    }
  }
}
