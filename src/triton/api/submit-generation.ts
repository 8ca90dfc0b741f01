import { randomUUID } from 'node:crypto';
import { AppError, type JobAccepted } from '../../contract/index.js';
import { visibleTenant, type Principal } from '../../common/api-keys.js';
import type { Logger } from '../../common/logger.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import { enqueueGeneration, type GenerationQueue } from '../generation-queue.js';
import { failJob } from '../job-failure.js';
import type { TritonMetrics } from '../triton-metrics.js';

/** What accepting a job needs. */
export interface SubmitGenerationDeps {
  store: TritonStore;
  queue: GenerationQueue;
  publisher: EventPublisher;
  logger: Logger;
  metrics?: TritonMetrics;
  /** How long a submission may wait for Redis before it is refused. @defaultValue 3000 (mare-api waits 5 s) */
  submitTimeoutMs?: number;
}

/**
 * Accepts a generation job: record it, publish `job:queued` (so it is seq 1 in the job's
 * history, before any worker can publish), then enqueue. With auth off, a job for a client that
 * does not exist is accepted too, and then fails saying so (`job:failed` with the reason). With
 * auth on (a `principal`), a client the caller may not see, whether another tenant's or none at
 * all, is `CLIENT_NOT_FOUND` (404) and no job is made; the job belongs to the client's tenant.
 * When Redis does not answer in time the submission is refused (503) and the job is never run.
 */
export async function submitGeneration(
  { submitTimeoutMs = 3000, ...deps }: SubmitGenerationDeps,
  clientId: string,
  principal?: Principal,
): Promise<JobAccepted> {
  const { store, publisher, queue, logger } = deps;
  let tenant: string | null = null;
  if (principal) {
    const owner = await store.clientOwner(clientId, visibleTenant(principal));
    if (!owner) throw new AppError('CLIENT_NOT_FOUND', `Client ${clientId} does not exist`);
    tenant = owner.tenant;
  }
  const jobId = randomUUID();
  await store.createJob(jobId, clientId, tenant);
  let timedOut = false;
  const fail = (message: string) =>
    failJob(deps, { jobId, clientId, message }).catch((err: unknown) =>
      logger.error({ job_id: jobId, err }, 'Could not record a refused job'),
    );
  const accept = async () => {
    await publisher.publish({
      event_type: 'job:queued',
      timestamp: new Date().toISOString(),
      job_id: jobId,
      client_id: clientId,
      ...(tenant === null ? {} : { tenant_id: tenant }),
      status: 'queued',
    });
    // Redis answered too late: the client was told no, so the job must not run.
    if (timedOut)
      return void (await fail('Template generation failed: the job queue was unavailable'));
    await enqueueGeneration(queue, { job_id: jobId, client_id: clientId });
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      accept(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new Error(`no answer from Redis within ${submitTimeoutMs} ms`));
        }, submitTimeoutMs);
      }),
    ]);
  } catch (err) {
    const message = 'Template generation failed: the job queue is unavailable';
    logger.error({ job_id: jobId, err }, message);
    if (!timedOut) await fail(message);
    throw new AppError('UPSTREAM_UNAVAILABLE', 'The job queue is unavailable; retry shortly', 5);
  } finally {
    clearTimeout(timer);
  }
  logger.info({ job_id: jobId, client_id: clientId }, `Accepted generation job ${jobId}`);
  return { job_id: jobId, status: 'queued' };
}
