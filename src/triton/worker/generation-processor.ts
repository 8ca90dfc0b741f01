import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from '../../common/logger.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import type { GenerationJobData } from '../generation-queue.js';
import { failJob, timeoutMessage } from '../job-failure.js';
import type { TritonMetrics } from '../triton-metrics.js';
import type { TemplateGenerator } from './template-generator.js';

export interface GenerationProcessorDeps {
  store: TritonStore;
  publisher: EventPublisher;
  generator: TemplateGenerator;
  logger: Logger;
  metrics?: TritonMetrics;
  /** Time spent on each template (the built-in generator is instant). @defaultValue 0 */
  stepMs?: number;
  /** A job still running after this is failed with a clear message. @defaultValue 10 minutes */
  timeoutMs?: number;
}

export interface GenerationResult {
  template_ids: string[];
}

const iso = (d: Date) => d.toISOString();

/** Thrown when a job outlives its deadline; never retried. */
class DeadlineExceeded extends UnrecoverableError {}

/**
 * Runs one generation job: `job:started`, one `job:progress` per stored template, then
 * `job:completed`; or `job:failed` once no attempt is left. Bad input (an unknown client, no
 * active value proposition) and a missed deadline are unrecoverable: the job fails at once
 * instead of being retried.
 */
export function createGenerationProcessor({
  store,
  publisher,
  generator,
  logger,
  metrics,
  stepMs = 0,
  timeoutMs = 10 * 60_000,
}: GenerationProcessorDeps) {
  return async function processGeneration(job: Job<GenerationJobData>): Promise<GenerationResult> {
    const { job_id, client_id } = job.data;
    const log = logger.child({ job_id });

    const existing = await store.getJob(job_id);
    if (!existing) throw new UnrecoverableError(`Job ${job_id} has no record in the database`);
    if (existing.status === 'completed' || existing.status === 'failed') {
      // A duplicate delivery of a job that already ended: its watchers were told then.
      log.warn({ status: existing.status }, 'Skipping a job that already ended');
      return { template_ids: [] };
    }

    const startedAt = new Date();
    const total = generator.kinds.length;
    await store.markJobStarted(job_id, startedAt, total);
    await publisher.publish({
      event_type: 'job:started',
      timestamp: iso(startedAt),
      job_id,
      client_id,
      status: 'running',
      started_at: iso(startedAt),
    });
    log.info({ attempt: job.attemptsMade + 1 }, `Generating templates for job ${job_id}`);

    const deadline = AbortSignal.timeout(timeoutMs);
    const checkDeadline = () => {
      if (deadline.aborted) {
        throw new DeadlineExceeded(timeoutMessage(timeoutMs));
      }
    };

    try {
      const client = await store.getClient(client_id);
      if (!client) {
        throw new UnrecoverableError(
          `Template generation failed: client ${client_id} does not exist`,
        );
      }
      const proposition = await store.activeValueProposition(client_id);
      if (!proposition) {
        throw new UnrecoverableError(
          `Template generation failed: client "${client.name}" (${client_id}) has no active value proposition`,
        );
      }
      const input = {
        clientName: client.name,
        industry: client.industry,
        valueProposition: proposition.content,
      };

      const templateIds: string[] = [];
      for (const [position, kind] of generator.kinds.entries()) {
        if (stepMs > 0) await delay(stepMs, undefined, { signal: deadline }).catch(checkDeadline);
        checkDeadline();
        const generated = await generator.generate(kind, input);
        checkDeadline();
        const id = randomUUID();
        const done = position + 1;
        await store.saveTemplate(
          { id, jobId: job_id, clientId: client_id, kind, position, ...generated },
          { done, total },
        );
        templateIds.push(id);
        await publisher.publish({
          event_type: 'job:progress',
          timestamp: iso(new Date()),
          job_id,
          client_id,
          status: 'running',
          progress: Math.floor((done * 100) / total),
          templates_done: done,
          templates_total: total,
          template_id: id,
        });
      }

      const completedAt = new Date();
      const durationMs = completedAt.getTime() - startedAt.getTime();
      if (!(await store.markJobCompleted(job_id, completedAt, durationMs))) {
        // Something else ended the job meanwhile (the sweeper, at its deadline): it told the watchers.
        log.warn('Job ended elsewhere while it ran; not publishing its completion');
        return { template_ids: templateIds };
      }
      await publisher.publish({
        event_type: 'job:completed',
        timestamp: iso(new Date()),
        job_id,
        client_id,
        status: 'completed',
        template_ids: templateIds,
        template_count: templateIds.length,
        generation_duration_ms: durationMs,
        completed_at: iso(completedAt),
      });
      metrics?.observeJob('completed', durationMs / 1000);
      log.info(
        { duration_ms: durationMs },
        `Job ${job_id} completed with ${templateIds.length} templates`,
      );
      return { template_ids: templateIds };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const attempts = job.opts.attempts ?? 1;
      if (err instanceof UnrecoverableError || job.attemptsMade + 1 >= attempts) {
        await failJob(
          { store, publisher, logger: log, metrics },
          { jobId: job_id, clientId: client_id, message, startedAt },
        );
      } else {
        log.warn(
          { err: message, attempt: job.attemptsMade + 1, attempts },
          `Job ${job_id} attempt failed; it will be retried`,
        );
      }
      throw err;
    }
  };
}
