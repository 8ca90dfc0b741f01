import { randomUUID } from 'node:crypto';
import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { JobUsage } from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import type { JobRow } from '../db/schema.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import type { GenerationJobData } from '../generation-queue.js';
import { finishCancelled } from '../job-cancellation.js';
import { failJob, timeoutMessage } from '../job-failure.js';
import type { TritonMetrics } from '../triton-metrics.js';
import { JobCancelled, type CancellationWatcher } from './cancellation-watcher.js';
import { DeltaBatcher } from './delta-batcher.js';
import { GenerationError } from './generation-error.js';
import type { GenerationInput, TemplateGenerator } from './template-generator.js';

/** What running generation jobs needs. */
export interface GenerationProcessorDeps {
  store: TritonStore;
  publisher: EventPublisher;
  generator: TemplateGenerator;
  cancellations: CancellationWatcher;
  logger: Logger;
  metrics?: TritonMetrics;
  /**
   * Aborted when the worker shuts down and its running jobs must go back to the queue at once
   * (another worker continues them).
   */
  shutdown?: AbortSignal;
  /** A job still running after this is failed with a clear message. @defaultValue 10 minutes */
  timeoutMs?: number;
  /** Longest a template's text waits before it is published as a `job:delta`. @defaultValue 100 */
  deltaIntervalMs?: number;
}

/** What a finished job returns to BullMQ. */
export interface GenerationResult {
  template_ids: string[];
}

const iso = (d: Date) => d.toISOString();

/** Thrown when a job outlives its deadline; never retried. */
class DeadlineExceeded extends UnrecoverableError {}

/** The reason to abort the `shutdown` signal with: the worker is shutting down. */
export class WorkerShutdown extends Error {
  override readonly name = 'WorkerShutdown';
  constructor() {
    super('The worker is shutting down');
  }
}

function addUsage(a: JobUsage, b: JobUsage): JobUsage {
  return {
    prompt_tokens: a.prompt_tokens + b.prompt_tokens,
    completion_tokens: a.completion_tokens + b.completion_tokens,
    requests: a.requests + b.requests,
    model_ms: a.model_ms + b.model_ms,
  };
}

/**
 * Runs one generation job: `job:started`; then, for each template not stored yet, its text as
 * `job:delta` events while it is written, and `job:progress` once it is stored; then
 * `job:completed`. An attempt continues after the templates an earlier attempt stored, and
 * continues a template it was writing from the text already published, so nothing is written
 * (or paid for) twice and a template's deltas always join into its stored body.
 *
 * How a job ends otherwise:
 * - cancelled (from any process): it stops at once, keeps its templates, `job:cancelled`;
 * - the worker shuts down: the job goes straight back to the queue (`job:queued`), not counted
 *   as stalled;
 * - bad input (an unknown client, no active value proposition), a model that refuses the
 *   request, or a missed deadline: `job:failed` at once, no retry;
 * - anything else: retried (BullMQ's attempts and backoff), `job:failed` once none is left.
 */
export function createGenerationProcessor({
  store,
  publisher,
  generator,
  cancellations,
  logger,
  metrics,
  shutdown,
  timeoutMs = 10 * 60_000,
  deltaIntervalMs = 100,
}: GenerationProcessorDeps) {
  const failDeps = { store, publisher, logger, metrics };

  return async function processGeneration(
    job: Job<GenerationJobData>,
    token?: string,
  ): Promise<GenerationResult> {
    const { job_id, client_id } = job.data;
    const log = logger.child({ job_id });

    const existing = await store.getJob(job_id);
    if (!existing) throw new UnrecoverableError(`Job ${job_id} has no record in the database`);
    if (existing.status !== 'queued' && existing.status !== 'running') {
      // A duplicate delivery of a job that already ended: its watchers were told then.
      log.warn({ status: existing.status }, 'Skipping a job that already ended');
      return { template_ids: [] };
    }

    // Every event names the job's tenant, so that gateways show it to that tenant alone.
    const owner = existing.tenant === null ? {} : { tenant_id: existing.tenant };

    const cancel = cancellations.watch(job_id);
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([cancel.signal, deadline, ...(shutdown ? [shutdown] : [])]);
    let row: JobRow | undefined = existing;
    try {
      if (existing.cancel_requested_at || (await cancellations.requested(job_id))) {
        throw new JobCancelled(job_id);
      }
      row = await store.markJobStarted(job_id, new Date(), generator.kinds.length);
      if (row?.status !== 'running') {
        if (row?.cancel_requested_at) throw new JobCancelled(job_id);
        log.warn({ status: row?.status }, 'Skipping a job that ended before it started');
        return { template_ids: [] };
      }
      const startedAt = row.started_at ?? new Date();
      await publisher.publish({
        event_type: 'job:started',
        timestamp: iso(new Date()),
        job_id,
        client_id,
        ...owner,
        status: 'running',
        started_at: iso(startedAt),
      });
      log.info({ attempt: row.attempts }, `Generating templates for job ${job_id}`);

      const input = await inputOf(client_id);
      const templateIds = await store.templateIds(job_id);
      const total = generator.kinds.length;
      let usage = usageOf(row);

      // Where an interrupted attempt stopped: the template it was writing, and its text so far.
      const state = await publisher.draftState(job_id);
      const draft = state?.draft ?? null;
      if (templateIds.length > 0 && (state?.templatesDone ?? 0) < templateIds.length) {
        // The last stored template's progress may not have been published before the crash.
        await publishProgress(templateIds.length, total, templateIds[templateIds.length - 1] ?? '');
      }

      for (let position = templateIds.length; position < total; position++) {
        const kind = generator.kinds[position];
        if (kind === undefined) break;
        const prefix = draft?.template_index === position ? draft.text : '';
        let body = prefix;
        const deltas = new DeltaBatcher({
          intervalMs: deltaIntervalMs,
          publish: async (delta) => {
            await publisher.publish({
              event_type: 'job:delta',
              timestamp: iso(new Date()),
              job_id,
              client_id,
              ...owner,
              status: 'running',
              template_index: position,
              template_kind: kind,
              delta,
            });
          },
        });
        let written;
        try {
          written = await generator.write({
            kind,
            position,
            input,
            prefix,
            signal,
            onText: (text) => {
              if (signal.aborted) return;
              body += text;
              deltas.add(text);
            },
          });
          // Every delta is published before the template is stored: its deltas are its body.
          await deltas.flush();
        } finally {
          deltas.close();
        }
        signal.throwIfAborted();
        const templateUsage: JobUsage = {
          prompt_tokens: written.usage.prompt_tokens,
          completion_tokens: written.usage.completion_tokens,
          requests: written.requests,
          model_ms: Math.round(written.model_ms),
        };
        usage = addUsage(usage, templateUsage);
        const id = randomUUID();
        await store.saveTemplate(
          {
            id,
            jobId: job_id,
            clientId: client_id,
            tenant: existing.tenant,
            kind,
            position,
            title: written.title,
            body,
            generator: generator.name,
            usage: templateUsage,
          },
          { done: position + 1, total },
        );
        templateIds.push(id);
        await publishProgress(position + 1, total, id);
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
        ...owner,
        status: 'completed',
        template_ids: templateIds,
        template_count: templateIds.length,
        generation_duration_ms: durationMs,
        completed_at: iso(completedAt),
        usage,
      });
      metrics?.observeJob('completed', durationMs / 1000);
      log.info(
        { duration_ms: durationMs, ...usage },
        `Job ${job_id} completed with ${templateIds.length} templates`,
      );
      return { template_ids: templateIds };
    } catch (thrown) {
      const reason: unknown = signal.aborted ? signal.reason : thrown;
      const startedAt = row?.started_at ?? null;
      if (reason instanceof JobCancelled) {
        await finishCancelled(failDeps, { jobId: job_id, clientId: client_id, startedAt });
        return { template_ids: await store.templateIds(job_id) };
      }
      if (reason instanceof WorkerShutdown) {
        await handBack(job, token);
        throw new WaitingError();
      }
      const err =
        deadline.aborted && signal.reason === deadline.reason
          ? new DeadlineExceeded(timeoutMessage(timeoutMs))
          : reason;
      const message = err instanceof Error ? err.message : String(err);
      const final =
        err instanceof UnrecoverableError ||
        (err instanceof GenerationError && !err.retryable) ||
        job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final) {
        await failJob(failDeps, {
          jobId: job_id,
          clientId: client_id,
          message,
          startedAt,
          cause: err,
        });
        throw err instanceof UnrecoverableError ? err : new UnrecoverableError(message);
      }
      log.warn(
        { err, attempt: job.attemptsMade + 1, attempts: job.opts.attempts ?? 1 },
        `Job ${job_id} attempt failed; it will be retried`,
      );
      throw err;
    } finally {
      cancel.release();
    }

    async function inputOf(clientId: string): Promise<GenerationInput> {
      const client = await store.getClient(clientId);
      if (!client) {
        throw new UnrecoverableError(
          `Template generation failed: client ${clientId} does not exist`,
        );
      }
      const proposition = await store.activeValueProposition(clientId);
      if (!proposition) {
        throw new UnrecoverableError(
          `Template generation failed: client "${client.name}" (${clientId}) has no active value proposition`,
        );
      }
      return {
        clientName: client.name,
        industry: client.industry,
        valueProposition: proposition.content,
      };
    }

    async function publishProgress(done: number, total: number, templateId: string): Promise<void> {
      await publisher.publish({
        event_type: 'job:progress',
        timestamp: iso(new Date()),
        job_id,
        client_id,
        ...owner,
        status: 'running',
        progress: Math.floor((done * 100) / total),
        templates_done: done,
        templates_total: total,
        template_id: templateId,
      });
    }

    /**
     * Gives the job back to the queue at once: queued again in the database and to watchers,
     * and waiting in the queue for the next worker, without counting as a stall.
     */
    async function handBack(queued: Job<GenerationJobData>, lockToken?: string): Promise<void> {
      if (await store.markJobRequeued(job_id)) {
        await publisher.publish({
          event_type: 'job:queued',
          timestamp: iso(new Date()),
          job_id,
          client_id,
          ...owner,
          status: 'queued',
        });
      }
      await queued.moveToWait(lockToken);
      log.info(`Job ${job_id} went back to the queue: this worker is shutting down`);
    }
  };
}

function usageOf(row: JobRow): JobUsage {
  return {
    prompt_tokens: row.prompt_tokens,
    completion_tokens: row.completion_tokens,
    requests: row.model_requests,
    model_ms: row.model_ms,
  };
}
