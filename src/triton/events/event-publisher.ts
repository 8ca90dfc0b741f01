import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  decodeDraftHash,
  encodeEventDraft,
  type DraftState,
  type JobEventDraft,
  type SnapshotDraft,
  type Keyspace,
} from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import type { Redis } from '../../common/redis.js';
import type { TritonMetrics } from '../triton-metrics.js';

/** The atomic publish (its header says what it takes, does and answers), read once. */
const PUBLISH_SCRIPT = readFileSync(new URL('./publish-job-event.lua', import.meta.url), 'utf8');

type PublishCommand = (
  seqKey: string,
  jobStreamKey: string,
  globalStreamKey: string,
  receiptKey: string,
  draftKey: string,
  draftJson: string,
  allChannel: string,
  jobChannel: string,
  ttlSeconds: number,
  maxPerJob: number,
  maxGlobal: number,
  floorSeq: number,
  receiptTtlSeconds: number,
  draftOp: DraftOp,
  draftIndex: number,
  draftKind: string,
  draftText: string,
) => Promise<[number, string]>;

/** What an event does to its job's draft (see the script's header). */
type DraftOp = 'a' | 'r' | 'd' | '';

/** The draft operation of an event, with its position, kind and text. */
function draftOperation(draft: JobEventDraft): [DraftOp, number, string, string] {
  switch (draft.event_type) {
    case 'job:delta':
      return ['a', draft.template_index, draft.template_kind, draft.delta];
    case 'job:progress':
      return ['r', draft.templates_done, '', ''];
    case 'job:completed':
    case 'job:failed':
    case 'job:cancelled':
      return ['d', 0, '', ''];
    default:
      return ['', 0, '', ''];
  }
}

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
      redis.defineCommand('tritonPublishJobEvent', { numberOfKeys: 5, lua: PUBLISH_SCRIPT });
    }
    const command = (redis as unknown as { tritonPublishJobEvent: PublishCommand })
      .tritonPublishJobEvent;
    this.command = command.bind(redis);
    if (redis.status === 'ready') this.logger.info('Event publisher connected to Redis');
    else redis.once('ready', () => this.logger.info('Event publisher connected to Redis'));
  }

  /**
   * The template a job was writing when its last event was published, and the text of it
   * published so far (null when none: no delta since the last stored template).
   */
  async draft(jobId: string): Promise<SnapshotDraft | null> {
    return (await this.draftState(jobId))?.draft ?? null;
  }

  /**
   * What a job's published events say of its text: how many templates' progress was published,
   * and the template being written with its text so far (undefined: no such event, or the job
   * ended).
   */
  async draftState(jobId: string): Promise<DraftState | undefined> {
    return decodeDraftHash(await this.redis.hgetall(this.keyspace.jobDraftKey(jobId)));
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
      k.jobDraftKey(jobId),
      encodeEventDraft(draft),
      k.allJobsChannel,
      k.jobChannel(jobId),
      this.historyTtlSeconds,
      this.maxPerJob,
      this.maxGlobal,
      this.lastSeq.get(jobId) ?? 0,
      RECEIPT_TTL_SECONDS,
      ...draftOperation(draft),
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
    if (draft.event_type === 'job:progress' || draft.event_type === 'job:delta') {
      this.logger.debug(log, message);
    } else {
      this.logger.info(log, message);
    }
    return { ...draft, seq };
  }
}
