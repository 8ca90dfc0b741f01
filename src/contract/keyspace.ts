/**
 * Every Redis channel and key the system uses, in one place. With the default empty prefix
 * the names are exactly the seed's (`triton:jobs:all`, `triton:jobs:{job_id}`,
 * `triton:job:result:{job_id}`); a prefix lets several deployments (or test runs) share one
 * Redis without seeing each other.
 */
export interface Keyspace {
  /** The prefix every name below starts with. */
  readonly prefix: string;
  /** Pub/Sub channel carrying every job's events (global listeners). */
  readonly allJobsChannel: string;
  /** Pub/Sub channel carrying one job's events. */
  jobChannel(jobId: string): string;
  /** Cached terminal status document (`SET … EX ttl`). */
  jobResultKey(jobId: string): string;
  /** Capped, expiring stream of one job's events; entry ids are `0-{seq}`. */
  jobHistoryKey(jobId: string): string;
  /** Counter that hands out a job's `seq` values. */
  jobSeqKey(jobId: string): string;
  /** Short-lived receipt of one publish call, so that a retried call publishes nothing twice. */
  publishReceiptKey(jobId: string, token: string): string;
  /**
   * The text so far of the template a job is writing (a hash: `i` its position, `k` its kind,
   * `t` the text, `s` the seq of the event that last changed it), kept by the publish script:
   * what a snapshot shows, and where a retried attempt continues.
   */
  jobDraftKey(jobId: string): string;
  /** Set when someone asked to cancel a job: a worker that starts or runs it stops. */
  jobCancelKey(jobId: string): string;
  /** Pub/Sub channel telling every worker which job to cancel (the message is its id). */
  readonly cancelChannel: string;
  /** Capped stream of every job's events, in publish order. */
  readonly globalHistoryKey: string;
  /** BullMQ's key prefix for the generation queue. */
  readonly queuePrefix: string;
  /**
   * Counter of one client's requests of one kind (`scope`, e.g. `mare-api:write`) in the current
   * rate-limit window, shared by every instance of an API.
   */
  rateLimitKey(scope: string, client: string): string;
}

/** Builds the names for one deployment. @param prefix - prepended to every name; default none. */
export function createKeyspace(prefix = ''): Keyspace {
  return Object.freeze({
    prefix,
    allJobsChannel: `${prefix}triton:jobs:all`,
    jobChannel: (jobId: string) => `${prefix}triton:jobs:${jobId}`,
    jobResultKey: (jobId: string) => `${prefix}triton:job:result:${jobId}`,
    jobHistoryKey: (jobId: string) => `${prefix}triton:job:events:${jobId}`,
    jobSeqKey: (jobId: string) => `${prefix}triton:job:seq:${jobId}`,
    publishReceiptKey: (jobId: string, token: string) =>
      `${prefix}triton:job:receipt:${jobId}:${token}`,
    jobDraftKey: (jobId: string) => `${prefix}triton:job:draft:${jobId}`,
    jobCancelKey: (jobId: string) => `${prefix}triton:job:cancel:${jobId}`,
    cancelChannel: `${prefix}triton:control:cancel`,
    globalHistoryKey: `${prefix}triton:events:stream`,
    queuePrefix: `${prefix}triton:queue`,
    rateLimitKey: (scope: string, client: string) => `${prefix}triton:ratelimit:${scope}:${client}`,
  });
}

/** Name of the BullMQ queue that carries template-generation jobs. */
export const GENERATION_QUEUE = 'template-generation';
