import { z } from 'zod';
import { JobStatus, type TerminalJobEvent } from './events.js';
import { Uuid } from './ids.js';

/**
 * A job's status document: what `GET /jobs/{id}` (triton-api) and `GET /v1/triton/jobs/{id}`
 * (mare-api) answer, and what mare-api caches under `triton:job:result:{id}`. The seed's
 * fields (`job_id, status, template_ids, template_count, generation_duration_ms`, and
 * `error_message` on failure) plus what a watcher needs to render the job.
 */
export const JobStatusDocument = z.object({
  job_id: Uuid,
  client_id: Uuid,
  status: JobStatus,
  /** 0–100 while queued or running, 100 once completed, null once failed. */
  progress: z.number().min(0).max(100).nullable(),
  template_ids: z.array(z.string()),
  template_count: z.number().int().nonnegative(),
  /** Set once the job is terminal. */
  generation_duration_ms: z.number().int().nonnegative().nullable(),
  /** Set when the job failed: why, in words. */
  error_message: z.string().nullable(),
  /** Set once the job is terminal. */
  completed_at: z.iso.datetime({ offset: true }).nullable(),
});
export type JobStatusDocument = z.infer<typeof JobStatusDocument>;

/** The status document a terminal event fully determines, so the cache needs no lookup. */
export function statusDocumentFromTerminalEvent(event: TerminalJobEvent): JobStatusDocument {
  if (event.event_type === 'job:completed') {
    return {
      job_id: event.job_id,
      client_id: event.client_id,
      status: 'completed',
      progress: 100,
      template_ids: event.template_ids,
      template_count: event.template_count,
      generation_duration_ms: event.generation_duration_ms,
      error_message: null,
      completed_at: event.completed_at,
    };
  }
  return {
    job_id: event.job_id,
    client_id: event.client_id,
    status: 'failed',
    progress: null,
    template_ids: [],
    template_count: 0,
    generation_duration_ms: event.generation_duration_ms,
    error_message: event.error_message,
    completed_at: event.completed_at,
  };
}

/** `202` body of a submission, on both APIs. */
export const JobAccepted = z.object({ job_id: Uuid, status: JobStatus });
export type JobAccepted = z.infer<typeof JobAccepted>;

/**
 * What a gateway sends on a job's stream when it cannot replay the events a subscriber
 * missed (their history expired or was trimmed): the job's whole state at once, as of `seq`.
 * Events with a higher `seq` follow as usual. Carries `status`, so clients written against the
 * seed (which look only at `data.status`) handle it like any other event.
 */
export const JobSnapshot = JobStatusDocument.extend({
  event_type: z.literal('job:snapshot'),
  timestamp: z.iso.datetime({ offset: true }),
  seq: z.number().int().nonnegative(),
});
export type JobSnapshot = z.infer<typeof JobSnapshot>;

export function jobSnapshot(doc: JobStatusDocument, seq: number): JobSnapshot {
  return { event_type: 'job:snapshot', timestamp: new Date().toISOString(), ...doc, seq };
}
