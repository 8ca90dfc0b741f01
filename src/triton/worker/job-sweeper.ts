import { QueueEvents } from 'bullmq';
import { GENERATION_QUEUE, type Keyspace } from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import type { RedisClient } from '../../common/redis.js';
import { RepeatedErrorLog } from '../../common/repeated-error-log.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import type { GenerationQueue } from '../generation-queue.js';
import { failJob, timeoutMessage } from '../job-failure.js';
import type { TritonMetrics } from '../triton-metrics.js';

/** What the sweeper reads, fails jobs through, and how often it looks. */
export interface JobSweeperOptions {
  store: TritonStore;
  queue: GenerationQueue;
  publisher: EventPublisher;
  logger: Logger;
  metrics?: TritonMetrics;
  keyspace: Keyspace;
  /** Connection that BullMQ's queue-event listener duplicates for its blocking reads. */
  connection: RedisClient;
  /** A running job older than this is failed. */
  timeoutMs: number;
  /** How often to look. @defaultValue 15000 */
  intervalMs?: number;
  /** A job younger than this is never declared lost (it may be on its way into the queue). @defaultValue 30000 */
  graceMs?: number;
}

/** How long closing waits for the queue's event listener to let go of Redis. */
const CLOSE_TIMEOUT_MS = 3000;

/**
 * Makes sure no job stays `queued` or `running` forever and that every ending is published:
 * - a job BullMQ fails outside the processor (a worker died holding it too often: "stalled") is
 *   failed in the database and announced, as soon as the queue reports it;
 * - every `intervalMs`, unfinished jobs are checked: one that outlived its deadline, one that
 *   the queue lost (gone from Redis), or one the queue already failed, is failed and announced.
 * Several processes may run sweepers at once: `failJob` publishes each failure exactly once.
 */
export class JobSweeper {
  private readonly o: Required<Omit<JobSweeperOptions, 'metrics'>> & { metrics?: TritonMetrics };
  private readonly events: QueueEvents;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly errors: RepeatedErrorLog;

  constructor({ intervalMs = 15_000, graceMs = 30_000, ...options }: JobSweeperOptions) {
    this.o = { intervalMs, graceMs, ...options };
    this.errors = new RepeatedErrorLog(options.logger);
    this.events = new QueueEvents(GENERATION_QUEUE, {
      connection: options.connection,
      prefix: options.keyspace.queuePrefix,
    });
    this.events.on('failed', ({ jobId, failedReason }) => {
      void this.failFromQueue(jobId, failedReason);
    });
    this.events.on('error', (err) => this.errors.warn(err, 'Queue event listener error'));
  }

  /** Starts listening to the queue's failures and sweeping every `intervalMs`. */
  async start(): Promise<void> {
    await this.events.waitUntilReady();
    this.timer = setInterval(() => void this.sweep(), this.o.intervalMs);
    this.timer.unref();
  }

  /** One pass over unfinished jobs. Concurrent calls share one pass. */
  sweep(): Promise<void> {
    this.sweeping ??= this.doSweep()
      .catch((err: unknown) => this.errors.warn(err, 'Job sweep failed'))
      .finally(() => {
        this.sweeping = undefined;
      });
    return this.sweeping;
  }

  private deps() {
    const { store, publisher, logger, metrics } = this.o;
    return { store, publisher, logger, metrics };
  }

  private async failFromQueue(jobId: string, reason: string): Promise<void> {
    try {
      const row = await this.o.store.getJob(jobId);
      if (!row || row.status === 'completed' || row.status === 'failed') return;
      await failJob(this.deps(), {
        jobId,
        clientId: row.client_id,
        message: reason.startsWith('Template generation failed')
          ? reason
          : `Template generation failed: ${reason}`,
        startedAt: row.started_at,
      });
    } catch (err) {
      this.o.logger.warn({ job_id: jobId, err }, 'Could not record a failed job');
    }
  }

  private async doSweep(): Promise<void> {
    const now = Date.now();
    const { store, queue, timeoutMs, graceMs } = this.o;
    for (const row of await store.unfinishedJobs(new Date(now - graceMs))) {
      const base = { jobId: row.id, clientId: row.client_id, startedAt: row.started_at };
      if (
        row.status === 'running' &&
        row.started_at &&
        now - row.started_at.getTime() > timeoutMs + graceMs
      ) {
        await failJob(this.deps(), {
          ...base,
          message: timeoutMessage(timeoutMs),
        });
        continue;
      }
      const queued = await queue.getJob(row.id);
      if (!queued) {
        await failJob(this.deps(), {
          ...base,
          message: 'Template generation failed: the job was lost from the queue',
        });
        continue;
      }
      if ((await queued.getState()) === 'failed') {
        await this.failFromQueue(row.id, queued.failedReason || 'the job failed');
      }
    }
  }

  /** Stops sweeping and listening. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      await this.sweeping;
      // Closing the queue's event listener waits for its connection to end, which never comes
      // while that connection waits to reconnect to a Redis that is down: a shutdown must not.
      let timer: NodeJS.Timeout | undefined;
      const closed = this.events.close().catch(() => undefined);
      await Promise.race([
        closed,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            this.errors.warn('no answer from Redis', 'Gave up closing the queue event listener');
            resolve();
          }, CLOSE_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    })();
    return this.closing;
  }
}
