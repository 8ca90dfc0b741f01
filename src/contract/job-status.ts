import { z } from 'zod';
import { JobStatus, type TerminalJobEvent } from './events.js';
import { Uuid } from './ids.js';
import { JobUsage, NO_USAGE, TemplateKind } from './resources.js';

/**
 * A job's status document: what `GET /jobs/{id}` (triton-api) and `GET /v1/triton/jobs/{id}`
 * (mare-api) answer, and what mare-api caches under `triton:job:result:{id}`:
 * `job_id, status, template_ids, template_count, generation_duration_ms` and `error_message`
 * (docs/contract.md), plus what a watcher needs to render the job.
 */
export const JobStatusDocument = z.object({
  job_id: Uuid,
  client_id: Uuid,
  status: JobStatus,
  /** 0–100 while queued or running, 100 once completed, null once failed or cancelled. */
  progress: z.number().min(0).max(100).nullable(),
  /** The templates stored so far, in order (those of a failed or cancelled job are kept). */
  template_ids: z.array(z.string()),
  template_count: z.number().int().nonnegative(),
  /** Set once the job is terminal. */
  generation_duration_ms: z.number().int().nonnegative().nullable(),
  /** Set when the job failed: why, in words. */
  error_message: z.string().nullable(),
  /** Set once the job is terminal. */
  completed_at: z.iso.datetime({ offset: true }).nullable(),
  /** What the job's model calls cost: tokens, requests, model time (zeros without a model). */
  usage: JobUsage.optional(),
  /** The tenant the job belongs to, when it was submitted with a key (see `tenant_id` of events). */
  tenant_id: z.string().optional(),
});
export type JobStatusDocument = z.infer<typeof JobStatusDocument>;

/** The status document a terminal event fully determines, so the cache needs no lookup. */
export function statusDocumentFromTerminalEvent(event: TerminalJobEvent): JobStatusDocument {
  const completed = event.event_type === 'job:completed';
  const templateIds = event.template_ids ?? [];
  return {
    job_id: event.job_id,
    client_id: event.client_id,
    status: event.status,
    progress: completed ? 100 : null,
    template_ids: templateIds,
    template_count: event.template_count ?? templateIds.length,
    generation_duration_ms: event.generation_duration_ms,
    error_message: event.event_type === 'job:failed' ? event.error_message : null,
    completed_at: event.completed_at,
    usage: event.usage ?? NO_USAGE,
    ...(event.tenant_id === undefined ? {} : { tenant_id: event.tenant_id }),
  };
}

/** `"tenant_id":"…"` in a status document's JSON; tenant names need no escaping. */
const TENANT_IN_JSON = /"tenant_id":"([^"\\]*)"/;

/**
 * The tenant a status document's JSON (as mare-api caches it) names, or undefined when the job
 * has none, without decoding the document. Only a key can match: inside a JSON string every `"`
 * is escaped, so the text `"tenant_id":"` cannot occur there, and no other key of a document is
 * named so.
 */
export function tenantOfDocumentJson(json: string): string | undefined {
  return TENANT_IN_JSON.exec(json)?.[1];
}

/** `202` body of a submission, on both APIs. */
export const JobAccepted = z.object({
  job_id: Uuid,
  status: JobStatus,
  /**
   * mare-api with auth on: a token that opens this job's stream without a key
   * (`/v1/triton/jobs/{job_id}/subscribe?token=…`), for a browser's `EventSource`.
   */
  stream_token: z.string().optional(),
});
export type JobAccepted = z.infer<typeof JobAccepted>;

/** A finished template as a snapshot carries it. */
export const SnapshotTemplate = z.object({
  template_id: z.string(),
  template_index: z.number().int().nonnegative(),
  template_kind: TemplateKind,
  title: z.string(),
  body: z.string(),
});
export type SnapshotTemplate = z.infer<typeof SnapshotTemplate>;

/** The template being written, as of a snapshot's seq: its text so far. */
export const SnapshotDraft = z.object({
  template_index: z.number().int().nonnegative(),
  template_kind: TemplateKind,
  text: z.string(),
});
export type SnapshotDraft = z.infer<typeof SnapshotDraft>;

/**
 * What a gateway sends on a job's stream when it cannot replay the events a subscriber
 * missed (their history expired or was trimmed): the job's whole state at once, as of `seq`,
 * with the finished templates' text and the text so far of the one being written. Events with
 * a higher `seq` follow as usual (a `job:delta` then appends to `draft.text`). Carries
 * `status`, so clients that look only at `data.status` handle it like any other event.
 */
export const JobSnapshot = JobStatusDocument.extend({
  event_type: z.literal('job:snapshot'),
  timestamp: z.iso.datetime({ offset: true }),
  seq: z.number().int().nonnegative(),
  templates: z.array(SnapshotTemplate).optional(),
  draft: SnapshotDraft.nullable().optional(),
});
export type JobSnapshot = z.infer<typeof JobSnapshot>;

/** A snapshot of `doc` as of `seq`, with the templates' text when known. */
export function jobSnapshot(
  doc: JobStatusDocument,
  seq: number,
  text?: { templates: SnapshotTemplate[]; draft: SnapshotDraft | null },
): JobSnapshot {
  return {
    event_type: 'job:snapshot',
    timestamp: new Date().toISOString(),
    ...doc,
    seq,
    ...(text ? { templates: text.templates, draft: text.draft } : {}),
  };
}
