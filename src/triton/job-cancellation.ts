import { AppError, type JobStatusDocument, type Keyspace } from '../contract/index.js';
import type { Logger } from '../common/logger.js';
import type { RedisClient } from '../common/redis.js';
import type { TritonStore } from './db/triton-store.js';
import type { EventPublisher } from './events/event-publisher.js';
import type { GenerationQueue } from './generation-queue.js';
import type { TritonMetrics } from './triton-metrics.js';

/** What ending a job as cancelled needs. */
export interface FinishCancelledDeps {
  store: TritonStore;
  publisher: EventPublisher;
  logger: Logger;
  metrics?: TritonMetrics;
}

/**
 * Ends a job as cancelled and tells its watchers (`job:cancelled`, with the templates it kept),
 * exactly once however many processes try: the conditional update in the store picks the one
 * that publishes. Returns whether this call did.
 */
export async function finishCancelled(
  { store, publisher, logger, metrics }: FinishCancelledDeps,
  job: { jobId: string; clientId: string; startedAt?: Date | null },
): Promise<boolean> {
  const completedAt = new Date();
  const durationMs = job.startedAt
    ? Math.max(0, completedAt.getTime() - job.startedAt.getTime())
    : 0;
  if (!(await store.markJobCancelled(job.jobId, completedAt, durationMs))) return false;
  const doc = await store.jobStatusDocument(job.jobId);
  const templateIds = doc?.template_ids ?? [];
  await publisher.publish({
    event_type: 'job:cancelled',
    timestamp: completedAt.toISOString(),
    job_id: job.jobId,
    client_id: job.clientId,
    status: 'cancelled',
    generation_duration_ms: durationMs,
    completed_at: completedAt.toISOString(),
    template_ids: templateIds,
    template_count: templateIds.length,
    ...(doc?.usage ? { usage: doc.usage } : {}),
    ...(doc?.tenant_id === undefined ? {} : { tenant_id: doc.tenant_id }),
  });
  metrics?.observeJob('cancelled', durationMs / 1000);
  logger.info(
    { job_id: job.jobId, templates: templateIds.length },
    `Job ${job.jobId} was cancelled`,
  );
  return true;
}

/** What asking for a cancellation needs. */
export interface RequestCancellationDeps extends FinishCancelledDeps {
  queue: GenerationQueue;
  /** Connection for the cancellation key and channel. */
  redis: RedisClient;
  keyspace: Keyspace;
  /** How long the cancellation key outlives the request, seconds. @defaultValue 1 day */
  keyTtlSeconds?: number;
}

/**
 * Cancels a job, wherever it is: the request is recorded in the database, in a key every worker
 * checks before and while running a job, and on a channel every worker listens to (BullMQ's own
 * cancellation reaches only its own process). A job still waiting in the queue is removed and
 * ended here at once; a running one is stopped by its worker, which then publishes
 * `job:cancelled`. A finished job cannot be cancelled: `JOB_FINISHED` (409).
 */
export async function requestCancellation(
  { keyTtlSeconds = 24 * 3600, ...deps }: RequestCancellationDeps,
  jobId: string,
  /** Only a job of this tenant may be cancelled (others are not found). @defaultValue any */
  tenant?: string,
): Promise<JobStatusDocument> {
  const { store, queue, redis, keyspace, logger } = deps;
  const row = await store.requestCancel(jobId, new Date(), tenant);
  if (!row) throw new AppError('JOB_NOT_FOUND', `Job ${jobId} does not exist`);
  if (row.status !== 'queued' && row.status !== 'running') {
    throw new AppError(
      'JOB_FINISHED',
      `Job ${jobId} already ${row.status}; it cannot be cancelled`,
    );
  }
  try {
    await redis
      .multi()
      .set(keyspace.jobCancelKey(jobId), '1', 'EX', keyTtlSeconds)
      .publish(keyspace.cancelChannel, jobId)
      .exec();
  } catch (err) {
    // Recorded in the database: a worker that has not started the job yet will not. One that
    // runs it only hears of it through Redis, so the caller is told to try again.
    throw new AppError(
      'UPSTREAM_UNAVAILABLE',
      'Redis is unavailable: running jobs cannot be told to stop; retry shortly',
      5,
      { cause: err },
    );
  }
  logger.info({ job_id: jobId }, `Cancellation requested for job ${jobId}`);
  if (row.status === 'queued') {
    // Not taken by a worker yet: take it out of the queue and end it here. A job a worker has
    // just locked cannot be removed; that worker sees the request before it starts.
    const queued = await queue.getJob(jobId);
    const removed = queued
      ? await queued.remove().then(
          () => true,
          () => false,
        )
      : true;
    if (removed) {
      await finishCancelled(deps, { jobId, clientId: row.client_id, startedAt: row.started_at });
    }
  }
  const doc = await store.jobStatusDocument(jobId, tenant);
  if (!doc) throw new AppError('JOB_NOT_FOUND', `Job ${jobId} does not exist`);
  return doc;
}
