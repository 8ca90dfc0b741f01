import type { Logger } from '../common/logger.js';
import type { TritonStore } from './db/triton-store.js';
import type { EventPublisher } from './events/event-publisher.js';
import type { TritonMetrics } from './triton-metrics.js';

/** What ending a job as failed needs. */
export interface FailJobDeps {
  store: TritonStore;
  publisher: EventPublisher;
  logger: Logger;
  metrics?: TritonMetrics;
}

/**
 * Ends a job as failed and tells its watchers (`job:failed`, with the templates it stored
 * before failing, which are kept), exactly once however many processes notice the failure:
 * the conditional update in the store picks the one that publishes. Returns whether this call did.
 */
export async function failJob(
  { store, publisher, logger, metrics }: FailJobDeps,
  job: {
    jobId: string;
    clientId: string;
    message: string;
    startedAt?: Date | null;
    /** What failed it, when something was thrown: logged with its stack. */
    cause?: unknown;
  },
): Promise<boolean> {
  const completedAt = new Date();
  const durationMs = job.startedAt
    ? Math.max(0, completedAt.getTime() - job.startedAt.getTime())
    : 0;
  if (!(await store.markJobFailed(job.jobId, job.message, completedAt, durationMs))) return false;
  const doc = await store.jobStatusDocument(job.jobId);
  const templateIds = doc?.template_ids ?? [];
  await publisher.publish({
    event_type: 'job:failed',
    timestamp: completedAt.toISOString(),
    job_id: job.jobId,
    client_id: job.clientId,
    status: 'failed',
    error_message: job.message,
    generation_duration_ms: durationMs,
    completed_at: completedAt.toISOString(),
    template_ids: templateIds,
    template_count: templateIds.length,
    ...(doc?.usage ? { usage: doc.usage } : {}),
    ...(doc?.tenant_id === undefined ? {} : { tenant_id: doc.tenant_id }),
  });
  metrics?.observeJob('failed', durationMs / 1000);
  logger.warn({ job_id: job.jobId, err: job.cause ?? job.message }, `Job ${job.jobId} failed`);
  return true;
}

/** The `error_message` of a job that outlived its deadline. */
export function timeoutMessage(timeoutMs: number): string {
  const seconds = timeoutMs / 1000;
  const shown = seconds >= 10 ? Math.round(seconds) : Math.round(seconds * 10) / 10;
  return `Template generation failed: the job did not finish within its ${shown} s deadline`;
}
