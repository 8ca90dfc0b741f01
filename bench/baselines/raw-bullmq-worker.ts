import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

export interface RawBullmqWorkerOptions {
  redisUrl: string;
  queueName: string;
  prefix: string;
  concurrency: number;
}

/** A BullMQ worker whose processor does nothing, counting the jobs it completes. */
export interface RawBullmqWorker {
  readonly completed: number;
  /** Resolves once `count` jobs have completed since start. */
  waitForCompleted(count: number, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The yardstick for the project's queue: BullMQ's own Worker with an empty processor on the
 * same Redis and concurrency, so the difference is what the project does per job.
 */
export async function startRawBullmqWorker({
  redisUrl,
  queueName,
  prefix,
  concurrency,
}: RawBullmqWorkerOptions): Promise<RawBullmqWorker> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(queueName, () => Promise.resolve(), {
    connection,
    prefix,
    concurrency,
  });
  let completed = 0;
  const waiters: { count: number; resolve: (n: number) => void }[] = [];
  worker.on('completed', () => {
    completed++;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i];
      if (waiter && completed >= waiter.count) {
        waiters.splice(i, 1);
        waiter.resolve(completed);
      }
    }
  });
  await worker.waitUntilReady();
  return {
    get completed() {
      return completed;
    },
    waitForCompleted(count, timeoutMs) {
      if (completed >= count) return Promise.resolve(completed);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${completed} of ${count} jobs completed`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: (n) => {
            clearTimeout(timer);
            resolve(n);
          },
        });
      });
    },
    async close() {
      await worker.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
