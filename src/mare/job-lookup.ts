import { JobStatusDocument, TERMINAL_STATUSES, tenantOfDocumentJson } from '../contract/index.js';
import { visibleTenant, type Principal } from '../common/api-keys.js';
import type { Logger } from '../common/logger.js';
import { RepeatedErrorLog } from '../common/repeated-error-log.js';
import type { MareMetrics } from './mare-metrics.js';
import type { ResultsCache } from './results-cache.js';
import type { TritonClient } from './triton-client.js';

/** A status lookup's answer, as the route sends it. */
export interface LookupResult {
  /** The status document's JSON. */
  json: string;
  /** True when it came from the cache, without a request to triton-api. */
  cached: boolean;
}

/** Where lookups are answered from. */
export interface JobLookupOptions {
  cache: ResultsCache;
  triton: TritonClient;
  logger: Logger;
  metrics: MareMetrics;
}

/**
 * Cache-first job status: the cache answers finished jobs without a request to triton-api;
 * on a miss triton-api answers, and a finished job's document is cached for the next lookup.
 *
 * With a `principal` (auth on), a cached document of another tenant's job counts as a miss:
 * triton-api, asked for the caller, answers `JOB_NOT_FOUND` exactly as for a job that does not
 * exist, by the same path and in about the same time, so neither tells the two apart.
 */
export class JobLookup {
  private readonly cache: ResultsCache;
  private readonly triton: TritonClient;
  private readonly logger: Logger;
  private readonly metrics: MareMetrics;
  private readonly errors: RepeatedErrorLog;

  constructor({ cache, triton, logger, metrics }: JobLookupOptions) {
    this.cache = cache;
    this.triton = triton;
    this.logger = logger;
    this.metrics = metrics;
    this.errors = new RepeatedErrorLog(logger);
  }

  /**
   * The job's status document as JSON text, from the cache or else from triton-api; throws
   * triton-api's error (`JOB_NOT_FOUND`, `UPSTREAM_…`) when it cannot say. With `principal`
   * (auth on), another tenant's job is not found, whether cached or not.
   */
  async json(jobId: string, principal?: Principal): Promise<LookupResult> {
    let cached: string | null = null;
    try {
      cached = await this.cache.getJson(jobId);
    } catch (err) {
      // The cache is an optimisation: without it, triton-api still answers.
      this.errors.warn(err, 'Results cache unavailable', { job_id: jobId });
    }
    if (cached !== null && !visibleTo(cached, principal)) cached = null;
    if (cached !== null) {
      this.metrics.cacheLookups.inc({ result: 'hit' });
      this.logger.debug({ job_id: jobId }, `Cache hit for job ${jobId}`);
      return { json: cached, cached: true };
    }
    this.metrics.cacheLookups.inc({ result: 'miss' });
    this.logger.debug({ job_id: jobId }, `Cache miss for job ${jobId}`);
    const doc = await this.triton.getJob(jobId, { principal });
    if (TERMINAL_STATUSES.has(doc.status)) {
      this.cache.set(doc).catch((err: unknown) => {
        this.errors.warn(err, 'Could not cache a job result', { job_id: jobId });
      });
    }
    return { json: JSON.stringify(doc), cached: false };
  }

  /** The same lookup, parsed. */
  async document(jobId: string, principal?: Principal): Promise<JobStatusDocument> {
    const { json } = await this.json(jobId, principal);
    return JobStatusDocument.parse(JSON.parse(json));
  }
}

/** Whether a cached document is one `principal` may see (anyone's with auth off, or an admin's). */
export function visibleTo(json: string, principal: Principal | undefined): boolean {
  const tenant = visibleTenant(principal);
  return tenant === undefined || tenantOfDocumentJson(json) === tenant;
}
