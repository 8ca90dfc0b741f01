import {
  statusDocumentFromTerminalEvent,
  type JobStatusDocument,
  type Keyspace,
  type TerminalJobEvent,
} from '../contract/index.js';
import type { RedisClient } from '../common/redis.js';

/** Where the results cache keeps documents, and for how long. */
export interface ResultsCacheOptions {
  /** The cache's Redis; its owner closes it. */
  redis: RedisClient;
  keyspace: Keyspace;
  /** Seconds a cached document lives (`RESULT_CACHE_TTL_SECONDS`). @defaultValue 3600 (one hour) */
  ttlSeconds?: number;
}

/**
 * Terminal status documents under `triton:job:result:{job_id}` with a TTL. Reads return the
 * stored JSON text as is, so a cached lookup is one GET and no decoding.
 */
export class ResultsCache {
  private readonly redis: RedisClient;
  private readonly keyspace: Keyspace;
  readonly ttlSeconds: number;

  constructor({ redis, keyspace, ttlSeconds = 3600 }: ResultsCacheOptions) {
    this.redis = redis;
    this.keyspace = keyspace;
    this.ttlSeconds = ttlSeconds;
  }

  /** The cached document's JSON, or null on a miss. */
  getJson(jobId: string): Promise<string | null> {
    return this.redis.get(this.keyspace.jobResultKey(jobId));
  }

  /** Caches a finished job's document for `ttlSeconds`. */
  async set(doc: JobStatusDocument): Promise<void> {
    await this.redis.set(
      this.keyspace.jobResultKey(doc.job_id),
      JSON.stringify(doc),
      'EX',
      this.ttlSeconds,
    );
  }

  /** Caches the document that a terminal event fully determines. */
  setFromEvent(event: TerminalJobEvent): Promise<void> {
    return this.set(statusDocumentFromTerminalEvent(event));
  }
}
