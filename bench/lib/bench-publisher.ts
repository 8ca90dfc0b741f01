import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createKeyspace, type JobEventDraft } from '../../src/contract/index.js';
import { createLogger } from '../../src/common/logger.js';
import { closeRedis, createRedisCluster, type RedisClient } from '../../src/common/redis.js';
import { EventPublisher } from '../../src/triton/events/event-publisher.js';
import { benchEventDraft } from './bench-events.js';
import { epochMs, sleep } from './clock.js';
import { LatencyHistogram } from './latency-histogram.js';

/** What one publishing run did. */
export interface PublishRun {
  published: number;
  failed: number;
  /** When the first publish was called and the last one answered (epoch ms). */
  startMs: number;
  endMs: number;
  /** Round trip of each publish (the Lua script), ms. */
  publishLatency: LatencyHistogram;
}

/** Writes the event to publish for `jobId`, stamped `sentAtMs` (see {@link epochMs}). */
export type DraftOf = (jobId: string, clientId: string, sentAtMs: number) => JobEventDraft;

/**
 * Publishes benchmark events straight to Redis through the project's {@link EventPublisher}
 * (one atomic Lua publish on a single server, two steps on a cluster: history streams and both
 * channels), exactly as triton's worker does, stamping each with the time publish was called.
 */
export class BenchPublisher {
  private n = 0;
  private readonly clientId = randomUUID();

  private constructor(
    private readonly redis: RedisClient,
    private readonly publisher: EventPublisher,
  ) {}

  /** A publisher on its own connection; `cluster` when `redisUrl` names a cluster's node. */
  static create(redisUrl: string, { keyPrefix = '', cluster = false } = {}): BenchPublisher {
    const logger = createLogger({ logLevel: 'silent', logFormat: 'json' });
    const redis = cluster
      ? createRedisCluster(redisUrl, {
          name: 'bench-publisher',
          logger,
          maxRetriesPerRequest: null,
        })
      : new Redis(redisUrl, { maxRetriesPerRequest: null });
    const publisher = new EventPublisher({ redis, keyspace: createKeyspace(keyPrefix), logger });
    return new BenchPublisher(redis, publisher);
  }

  /** A `job:queued` event for each job, so mare-api finds their history when a client subscribes. */
  async publishQueued(jobIds: readonly string[]): Promise<void> {
    const now = new Date().toISOString();
    for (let i = 0; i < jobIds.length; i += 200) {
      await Promise.all(
        jobIds.slice(i, i + 200).map((jobId) =>
          this.publisher.publish({
            event_type: 'job:queued',
            timestamp: now,
            job_id: jobId,
            client_id: this.clientId,
            status: 'queued',
          }),
        ),
      );
    }
  }

  /**
   * `rate` events a second for `seconds`, round-robin over `jobIds`: benchmark events, or the
   * drafts `draftOf` writes (each stamped with the time publish was called).
   */
  async rated({
    rate,
    seconds,
    jobIds,
    draftOf,
  }: {
    rate: number;
    seconds: number;
    jobIds: readonly string[];
    draftOf?: DraftOf;
  }): Promise<PublishRun> {
    const total = Math.max(1, Math.round(rate * seconds));
    return this.run(
      total,
      jobIds,
      (sent, startMs) => startMs + (sent * 1000) / rate,
      10_000,
      draftOf,
    );
  }

  /** `count` events as fast as Redis takes them, at most `maxInFlight` unanswered. */
  burst({
    count,
    jobIds,
    maxInFlight = 64,
  }: {
    count: number;
    jobIds: readonly string[];
    maxInFlight?: number;
  }): Promise<PublishRun> {
    return this.run(count, jobIds, () => 0, maxInFlight);
  }

  private async run(
    total: number,
    jobIds: readonly string[],
    dueAt: (sent: number, startMs: number) => number,
    maxInFlight: number,
    draftOf: DraftOf = (jobId, clientId, sentAtMs) =>
      benchEventDraft(jobId, clientId, this.n++, sentAtMs),
  ): Promise<PublishRun> {
    const publishLatency = new LatencyHistogram();
    const startMs = epochMs();
    let sent = 0;
    let failed = 0;
    let inFlight = 0;
    let endMs = startMs;
    let wake: (() => void) | undefined;
    const settled = () => {
      inFlight--;
      endMs = epochMs();
      wake?.();
    };
    while (sent < total) {
      const now = epochMs();
      const due = dueAt(sent, startMs);
      if (due > now) {
        await sleep(Math.max(1, Math.floor(due - now)));
        continue;
      }
      if (inFlight >= maxInFlight) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const jobId = jobIds[sent % jobIds.length] ?? randomUUID();
      const sentAt = epochMs();
      inFlight++;
      this.publisher.publish(draftOf(jobId, this.clientId, sentAt)).then(
        () => {
          publishLatency.record(epochMs() - sentAt);
          settled();
        },
        () => {
          failed++;
          settled();
        },
      );
      sent++;
    }
    while (inFlight > 0) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    return { published: sent - failed, failed, startMs, endMs, publishLatency };
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
