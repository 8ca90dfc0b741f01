import { randomUUID } from 'node:crypto';
import { encodeEventDraft, type JobEventDraft, type Keyspace } from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import type { Redis } from '../../common/redis.js';
import type { TritonMetrics } from '../triton-metrics.js';

/**
 * One publish, atomically: assign the job's next `seq`, append the event to the global and the
 * job's history streams, and PUBLISH it on `triton:jobs:all` and `triton:jobs:{job_id}`.
 * Pub/Sub alone forgets every event nobody was listening for; the streams let a late or
 * reconnecting subscriber catch up, and doing all of it in one script means a subscriber never
 * sees a live event that history does not have, nor the reverse.
 *
 * The JSON is built once by the caller without `seq`; the script appends `"seq":N` as text,
 * so nothing is decoded or re-encoded in Redis (cjson would turn `[]` into `{}`).
 *
 * KEYS[4] is a receipt for this call: if the connection drops after Redis ran the script but
 * before the reply arrived, the client sends the same call again, and the receipt makes that a
 * no-op instead of a second copy of the event.
 *
 * ARGV[7] is the highest seq this process already published for the job: should Redis have lost
 * the counter (a restart without persistence), seq still never goes backwards for a job in flight.
 *
 * The job's keys and the global stream are in different hash slots: on Redis Cluster this
 * script needs the global stream dropped or moved to a per-slot layout.
 */
const PUBLISH_SCRIPT = `
local done = redis.call('GET', KEYS[4])
if done then
  return {tonumber(done), ''}
end
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[7])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local json = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
local gid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'e', json)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq, 'e', json, 'g', gid)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[2], json)
redis.call('PUBLISH', ARGV[3], json)
redis.call('SET', KEYS[4], seq, 'EX', ARGV[8])
return {seq, gid}
`;

type PublishCommand = (
  seqKey: string,
  jobStreamKey: string,
  globalStreamKey: string,
  receiptKey: string,
  draftJson: string,
  allChannel: string,
  jobChannel: string,
  ttlSeconds: number,
  maxPerJob: number,
  maxGlobal: number,
  floorSeq: number,
  receiptTtlSeconds: number,
) => Promise<[number, string]>;

/** How long a publish receipt lasts: longer than any reconnect-and-resend. */
const RECEIPT_TTL_SECONDS = 600;

/** Jobs whose last published seq a publisher remembers (a worker runs a few at a time). */
const REMEMBERED_JOBS = 10_000;

export interface EventPublisherOptions {
  /** A connection this publisher may use; its owner closes it. */
  redis: Redis;
  keyspace: Keyspace;
  logger: Logger;
  metrics?: TritonMetrics;
  /** How long a job's history (and its seq counter) lives after its last event. @defaultValue 1 day */
  historyTtlSeconds?: number;
  /** Approximate cap of one job's history stream. @defaultValue 1000 */
  maxPerJob?: number;
  /** Approximate cap of the global history stream. @defaultValue 10000 */
  maxGlobal?: number;
}

/** Publishes job events; one per process is enough, shared by every job it runs. */
export class EventPublisher {
  private readonly redis: Redis;
  private readonly keyspace: Keyspace;
  private readonly logger: Logger;
  private readonly metrics: TritonMetrics | undefined;
  private readonly historyTtlSeconds: number;
  private readonly maxPerJob: number;
  private readonly maxGlobal: number;
  private readonly command: PublishCommand;
  /** Last seq published per job, oldest first. */
  private readonly lastSeq = new Map<string, number>();

  constructor({
    redis,
    keyspace,
    logger,
    metrics,
    historyTtlSeconds = 24 * 3600,
    maxPerJob = 1000,
    maxGlobal = 10_000,
  }: EventPublisherOptions) {
    this.redis = redis;
    this.keyspace = keyspace;
    this.logger = logger;
    this.metrics = metrics;
    this.historyTtlSeconds = historyTtlSeconds;
    this.maxPerJob = maxPerJob;
    this.maxGlobal = maxGlobal;
    if (!('tritonPublishJobEvent' in redis)) {
      redis.defineCommand('tritonPublishJobEvent', { numberOfKeys: 4, lua: PUBLISH_SCRIPT });
    }
    const command = (redis as unknown as { tritonPublishJobEvent: PublishCommand })
      .tritonPublishJobEvent;
    this.command = command.bind(redis);
    if (redis.status === 'ready') this.logger.info('Event publisher connected to Redis');
    else redis.once('ready', () => this.logger.info('Event publisher connected to Redis'));
  }

  /** Publishes one event and returns it as subscribers receive it, `seq` included. */
  async publish<D extends JobEventDraft>(draft: D): Promise<D & { seq: number }> {
    const started = performance.now();
    const jobId = draft.job_id;
    const k = this.keyspace;
    const [seq] = await this.command(
      k.jobSeqKey(jobId),
      k.jobHistoryKey(jobId),
      k.globalHistoryKey,
      k.publishReceiptKey(jobId, randomUUID()),
      encodeEventDraft(draft),
      k.allJobsChannel,
      k.jobChannel(jobId),
      this.historyTtlSeconds,
      this.maxPerJob,
      this.maxGlobal,
      this.lastSeq.get(jobId) ?? 0,
      RECEIPT_TTL_SECONDS,
    );
    this.lastSeq.delete(jobId);
    this.lastSeq.set(jobId, seq);
    if (this.lastSeq.size > REMEMBERED_JOBS) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
    this.metrics?.observePublish(draft.event_type, (performance.now() - started) / 1000);
    const log = { job_id: jobId, event_type: draft.event_type, seq };
    const message = `Published event '${draft.event_type}' for job ${jobId}`;
    if (draft.event_type === 'job:progress') this.logger.debug(log, message);
    else this.logger.info(log, message);
    return { ...draft, seq };
  }
}
