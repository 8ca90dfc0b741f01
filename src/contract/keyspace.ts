/**
 * Every Redis channel and key the system uses, in one place. With the default empty prefix
 * the names the original system promised are kept exactly (`triton:jobs:all`,
 * `triton:jobs:{job_id}`, `triton:job:result:{job_id}`: docs/contract.md); a prefix lets several
 * deployments (or test runs) share one Redis without seeing each other.
 *
 * The same names serve a single server and a Redis Cluster. On a cluster a key's slot is the
 * hash of its hash tag (the text between its first `{` and the next `}`), so:
 * - a job's own keys carry its channel's name as their tag: they hash to the slot of the job's
 *   (sharded) channel, and one script can update them and publish on it;
 * - the global history and its receipts share the tag `{triton:events}`;
 * - the queue's keys share `{triton:queue}`, as BullMQ's scripts need;
 * - API keys and their index share `{triton:auth}`, so that one transaction writes both.
 */
export interface Keyspace {
  /** The prefix every name below starts with. */
  readonly prefix: string;
  /** Pub/Sub channel carrying every job's events (global listeners; classic Pub/Sub). */
  readonly allJobsChannel: string;
  /** Pub/Sub channel carrying one job's events (sharded Pub/Sub on a cluster). */
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
  /**
   * Receipt of one publish call's step into the global history (on a cluster that step runs on
   * the global history's slot, apart from the job's own).
   */
  globalReceiptKey(token: string): string;
  /** BullMQ's key prefix for the generation queue. */
  readonly queuePrefix: string;
  /**
   * Counter of one client's requests of one kind (`scope`, e.g. `mare-api:write`) in the current
   * rate-limit window, shared by every instance of an API.
   */
  rateLimitKey(scope: string, client: string): string;
  /** Lease naming the one gateway that caches every job's result as it ends. */
  readonly cacherLeaseKey: string;
  /**
   * One API key's record (a hash: the SHA-256 of the key, its tenant, whether it is an admin's,
   * when it was created and revoked), by the key's id. The key itself is never stored.
   */
  apiKeyKey(keyId: string): string;
  /** The set of every API key's id, for listing them. */
  readonly apiKeyIdsKey: string;
}

/** Builds the names for one deployment. @param prefix - prepended to every name; default none. */
export function createKeyspace(prefix = ''): Keyspace {
  const jobChannel = (jobId: string) => `${prefix}triton:jobs:${jobId}`;
  // A job's channel name has no braces: as a tag it puts the key in the channel's own slot.
  const jobTag = (jobId: string) => `{${jobChannel(jobId)}}`;
  const events = `${prefix}{triton:events}`;
  const auth = `${prefix}{triton:auth}`;
  return Object.freeze({
    prefix,
    allJobsChannel: `${prefix}triton:jobs:all`,
    jobChannel,
    jobResultKey: (jobId: string) => `${prefix}triton:job:result:${jobId}`,
    jobHistoryKey: (jobId: string) => `${prefix}triton:job:events:${jobTag(jobId)}`,
    jobSeqKey: (jobId: string) => `${prefix}triton:job:seq:${jobTag(jobId)}`,
    publishReceiptKey: (jobId: string, token: string) =>
      `${prefix}triton:job:receipt:${jobTag(jobId)}:${token}`,
    jobDraftKey: (jobId: string) => `${prefix}triton:job:draft:${jobTag(jobId)}`,
    jobCancelKey: (jobId: string) => `${prefix}triton:job:cancel:${jobTag(jobId)}`,
    cancelChannel: `${prefix}triton:control:cancel`,
    globalHistoryKey: `${events}:stream`,
    globalReceiptKey: (token: string) => `${events}:receipt:${token}`,
    queuePrefix: `${prefix}{triton:queue}`,
    rateLimitKey: (scope: string, client: string) => `${prefix}triton:ratelimit:${scope}:${client}`,
    cacherLeaseKey: `${prefix}triton:mare:cacher`,
    apiKeyKey: (keyId: string) => `${auth}:key:${keyId}`,
    apiKeyIdsKey: `${auth}:keys`,
  });
}

/** Name of the BullMQ queue that carries template-generation jobs. */
export const GENERATION_QUEUE = 'template-generation';
