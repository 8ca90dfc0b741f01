import { Queue } from 'bullmq';
import { GENERATION_QUEUE, type Keyspace } from '../contract/index.js';
import type { RedisClient } from '../common/redis.js';

/** What a queued generation job carries: the ids; everything else is read when it runs. */
export interface GenerationJobData {
  job_id: string;
  client_id: string;
}

/** The BullMQ queue of generation jobs. */
export type GenerationQueue = Queue<GenerationJobData>;

/** Where the queue lives, and how often a job is tried. */
export interface GenerationQueueOptions {
  /** Shared connection; BullMQ does not close connections it was given. */
  connection: RedisClient;
  keyspace: Keyspace;
  /** Attempts for failures that may succeed on retry. @defaultValue 3 */
  attempts?: number;
}

/** The queue triton-api adds to and workers take from (BullMQ, under the keyspace's prefix). */
export function createGenerationQueue({
  connection,
  keyspace,
  attempts = 3,
}: GenerationQueueOptions): GenerationQueue {
  return new Queue<GenerationJobData>(GENERATION_QUEUE, {
    connection,
    prefix: keyspace.queuePrefix,
    defaultJobOptions: {
      attempts,
      backoff: { type: 'exponential', delay: 1000 },
      // The database keeps the record; the queue only needs recent jobs for inspection.
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600, count: 5000 },
    },
  });
}

/** Enqueues one job under its own id, so a repeated add is a no-op rather than a second run. */
export async function enqueueGeneration(
  queue: GenerationQueue,
  data: GenerationJobData,
): Promise<void> {
  await queue.add('generate-templates', data, { jobId: data.job_id });
}
