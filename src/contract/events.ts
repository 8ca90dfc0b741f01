import { z } from 'zod';
import { TenantName } from './auth.js';
import { Uuid } from './ids.js';
import { JobUsage, TemplateKind } from './resources.js';

/**
 * The job-event contract (docs/contract.md). `job:started`, `job:completed` and `job:failed`
 * keep the field names and values of the original system; `job:queued`, `job:progress`,
 * `job:delta` and `job:cancelled` are added, and every event has `seq`: a per-job counter
 * (1, 2, 3…) set atomically by the publisher so that subscribers can resume after a reconnect
 * and drop duplicates.
 */

/** Every status a job can have. */
export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
/** A job's status. */
export const JobStatus = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof JobStatus>;

/** Statuses after which a job never changes again. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set([
  'completed',
  'failed',
  'cancelled',
]);

/** Every `event_type` a job event can have. */
export const EVENT_TYPES = [
  'job:queued',
  'job:started',
  'job:progress',
  'job:delta',
  'job:completed',
  'job:failed',
  'job:cancelled',
] as const;
/** An event's `event_type`. */
export type JobEventType = (typeof EVENT_TYPES)[number];

const Timestamp = z.iso.datetime({ offset: true });
const Seq = z.number().int().positive();
const Count = z.number().int().nonnegative();

/** An entry id of a Redis stream (`<ms>-<n>`). */
export const STREAM_ID_PATTERN = /^\d{1,20}-\d{1,20}$/;

const base = {
  timestamp: Timestamp,
  job_id: Uuid,
  client_id: Uuid,
  /**
   * The tenant the job belongs to, when it was submitted with a key: gateways show the event
   * only to that tenant (and to admins). Absent for jobs submitted with auth off.
   */
  tenant_id: TenantName.optional(),
  /**
   * The event's position in the global history stream. Set on the all-jobs channel and stream
   * only (see `withStreamId`), so that a subscriber that lost its subscription resumes reading
   * history right after the last event it saw.
   */
  stream_id: z.string().regex(STREAM_ID_PATTERN).optional(),
};

/** `job:queued`: triton-api accepted the job. */
export const JobQueuedEvent = z.object({
  event_type: z.literal('job:queued'),
  ...base,
  status: z.literal('queued'),
  seq: Seq,
});

/** `job:started`: a worker began an attempt. */
export const JobStartedEvent = z.object({
  event_type: z.literal('job:started'),
  ...base,
  status: z.literal('running'),
  started_at: Timestamp,
  seq: Seq,
});

/** `job:progress`: one more template is stored (`template_id`). */
export const JobProgressEvent = z.object({
  event_type: z.literal('job:progress'),
  ...base,
  status: z.literal('running'),
  progress: z.number().min(0).max(100),
  templates_done: Count,
  templates_total: Count,
  template_id: z.string().min(1),
  seq: Seq,
});

/**
 * Text appended to the template being written (position `template_index`). A template's deltas,
 * joined in seq order, are exactly its stored `body`.
 */
export const JobDeltaEvent = z.object({
  event_type: z.literal('job:delta'),
  ...base,
  status: z.literal('running'),
  template_index: z.number().int().nonnegative(),
  template_kind: TemplateKind,
  delta: z.string(),
  seq: Seq,
});

/** `job:completed`: every template is stored; terminal. */
export const JobCompletedEvent = z.object({
  event_type: z.literal('job:completed'),
  ...base,
  status: z.literal('completed'),
  template_ids: z.array(z.string().min(1)),
  template_count: Count,
  generation_duration_ms: Count,
  completed_at: Timestamp,
  usage: JobUsage.optional(),
  seq: Seq,
});

/**
 * `job:failed`: the job ended before all its templates were written; terminal. The templates
 * stored before the failure are kept (`template_ids`, `template_count`).
 */
export const JobFailedEvent = z.object({
  event_type: z.literal('job:failed'),
  ...base,
  status: z.literal('failed'),
  error_message: z.string(),
  generation_duration_ms: Count,
  completed_at: Timestamp,
  template_ids: z.array(z.string().min(1)).optional(),
  template_count: Count.optional(),
  usage: JobUsage.optional(),
  seq: Seq,
});

/** `job:cancelled`: someone stopped the job; the templates stored before are kept; terminal. */
export const JobCancelledEvent = z.object({
  event_type: z.literal('job:cancelled'),
  ...base,
  status: z.literal('cancelled'),
  generation_duration_ms: Count,
  completed_at: Timestamp,
  template_ids: z.array(z.string().min(1)),
  template_count: Count,
  usage: JobUsage.optional(),
  seq: Seq,
});

/** Any job event, told apart by `event_type`. */
export const JobEvent = z.discriminatedUnion('event_type', [
  JobQueuedEvent,
  JobStartedEvent,
  JobProgressEvent,
  JobDeltaEvent,
  JobCompletedEvent,
  JobFailedEvent,
  JobCancelledEvent,
]);

export type JobQueuedEvent = z.infer<typeof JobQueuedEvent>;
export type JobStartedEvent = z.infer<typeof JobStartedEvent>;
export type JobProgressEvent = z.infer<typeof JobProgressEvent>;
export type JobDeltaEvent = z.infer<typeof JobDeltaEvent>;
export type JobCompletedEvent = z.infer<typeof JobCompletedEvent>;
export type JobFailedEvent = z.infer<typeof JobFailedEvent>;
export type JobCancelledEvent = z.infer<typeof JobCancelledEvent>;
export type JobEvent = z.infer<typeof JobEvent>;
/** An event after which the job never changes again. */
export type TerminalJobEvent = JobCompletedEvent | JobFailedEvent | JobCancelledEvent;

type WithoutSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;
/** An event as a publisher builds it: `seq` is assigned when it is published. */
export type JobEventDraft = WithoutSeq<JobEvent>;

/** Whether an event is a job's last: after it, the job never changes again. */
export function isTerminalEvent(event: JobEvent): event is TerminalJobEvent {
  return (
    event.event_type === 'job:completed' ||
    event.event_type === 'job:failed' ||
    event.event_type === 'job:cancelled'
  );
}

/** A status after which a job never changes again. */
export type TerminalStatus = TerminalJobEvent['status'];

/** Whether a status is terminal. */
export function isTerminalStatus(status: JobStatus): status is TerminalStatus {
  return TERMINAL_STATUSES.has(status);
}

/**
 * Serialises a draft without `seq`, in its fields' order. The publisher appends
 * `"seq":N` inside the atomic publish, so the JSON is built once and never re-encoded.
 */
export function encodeEventDraft(draft: JobEventDraft): string {
  return JSON.stringify(draft);
}

/** Why a message could not be decoded as a job event. */
export class EventDecodeError extends Error {
  override readonly name = 'EventDecodeError';
}

/** Parses and validates one published message; throws {@link EventDecodeError}. */
export function decodeEvent(json: string): JobEvent {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new EventDecodeError('message is not JSON');
  }
  const parsed = JobEvent.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'event';
    throw new EventDecodeError(`invalid job event: ${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
