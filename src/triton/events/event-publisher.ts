import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReplyError } from 'ioredis';
import {
  decodeDraftHash,
  encodeEventDraft,
  type DraftState,
  type JobEventDraft,
  type SnapshotDraft,
  type Keyspace,
} from '../../contract/index.js';
import type { Logger } from '../../common/logger.js';
import { isCluster, type RedisClient } from '../../common/redis.js';
import type { TritonMetrics } from '../triton-metrics.js';

/** The publish (its header says what each mode takes, does and answers), read once. */
const PUBLISH_SCRIPT = readFileSync(new URL('./publish-job-event.lua', import.meta.url), 'utf8');

/** The arguments every 'all' and 'job' call shares, after its keys and mode. */
type JobStepArgs = [
  draftJson: string,
  jobChannel: string,
  ttlSeconds: number,
  maxPerJob: number,
  floorSeq: number,
  receiptTtlSeconds: number,
  draftOp: DraftOp,
  draftIndex: number,
  draftKind: string,
  draftText: string,
];

/** Mode 'all': the whole publish, on a single server. */
type PublishAll = (
  seqKey: string,
  jobStreamKey: string,
  receiptKey: string,
  draftKey: string,
  globalStreamKey: string,
  mode: 'all',
  ...args: [...JobStepArgs, allChannel: string, maxGlobal: number]
) => Promise<[number, string]>;

/** Mode 'job': a cluster's first step, on the slot of the job's channel. */
type PublishJob = (
  seqKey: string,
  jobStreamKey: string,
  receiptKey: string,
  draftKey: string,
  mode: 'job',
  ...args: JobStepArgs
) => Promise<[number, string]>;

/** Mode 'global': a cluster's second step, on the slot of the global history. */
type PublishGlobal = (
  globalStreamKey: string,
  receiptKey: string,
  mode: 'global',
  json: string,
  allChannel: string,
  maxGlobal: number,
  receiptTtlSeconds: number,
  seq: number,
) => Promise<[number, string]>;

interface PublishCommands {
  tritonPublishAll: PublishAll;
  tritonPublishJob: PublishJob;
  tritonPublishGlobal: PublishGlobal;
}

/** The same script under one name per mode: each mode takes its own number of keys. */
const SCRIPT_KEYS: Record<keyof PublishCommands, number> = {
  tritonPublishAll: 5,
  tritonPublishJob: 4,
  tritonPublishGlobal: 2,
};

/**
 * Whether a failed cluster call may succeed if sent again: the connection dropped, or the slot's
 * master is being replaced. An error the script itself raised is final.
 */
function retryable(err: unknown): boolean {
  if (!(err instanceof ReplyError)) return true;
  return /^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY|MOVED|ASK)\b/.test(
    (err as Error).message,
  );
}

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

/** Where a publisher publishes, and how much history it keeps. */
export interface EventPublisherOptions {
  /** A connection this publisher may use (a single server or a cluster); its owner closes it. */
  redis: RedisClient;
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
  private readonly redis: RedisClient;
  private readonly keyspace: Keyspace;
  private readonly logger: Logger;
  private readonly metrics: TritonMetrics | undefined;
  private readonly historyTtlSeconds: number;
  private readonly maxPerJob: number;
  private readonly maxGlobal: number;
  private readonly commands: PublishCommands;
  /** On a cluster an event is published in two steps (see `publishInSteps`). */
  private readonly cluster: boolean;
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
    this.cluster = isCluster(redis);
    for (const [name, numberOfKeys] of Object.entries(SCRIPT_KEYS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua: PUBLISH_SCRIPT });
    }
    const defined = redis as unknown as PublishCommands;
    this.commands = {
      tritonPublishAll: defined.tritonPublishAll.bind(redis),
      tritonPublishJob: defined.tritonPublishJob.bind(redis),
      tritonPublishGlobal: defined.tritonPublishGlobal.bind(redis),
    };
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
    const seq = this.cluster ? await this.publishInSteps(draft) : await this.publishAtOnce(draft);
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

  /** The arguments the 'all' and 'job' modes share. */
  private jobStepArgs(draft: JobEventDraft, json: string): JobStepArgs {
    const jobId = draft.job_id;
    return [
      json,
      this.keyspace.jobChannel(jobId),
      this.historyTtlSeconds,
      this.maxPerJob,
      this.lastSeq.get(jobId) ?? 0,
      RECEIPT_TTL_SECONDS,
      ...draftOperation(draft),
    ];
  }

  /** A single server: one atomic call does everything. */
  private async publishAtOnce(draft: JobEventDraft): Promise<number> {
    const k = this.keyspace;
    const jobId = draft.job_id;
    const [seq] = await this.commands.tritonPublishAll(
      k.jobSeqKey(jobId),
      k.jobHistoryKey(jobId),
      k.publishReceiptKey(jobId, randomUUID()),
      k.jobDraftKey(jobId),
      k.globalHistoryKey,
      'all',
      ...this.jobStepArgs(draft, encodeEventDraft(draft)),
      k.allJobsChannel,
      this.maxGlobal,
    );
    return seq;
  }

  /**
   * A cluster: the job's keys and the global history live on different slots, so no one call
   * can write both. The job's step (seq, its history and draft, its sharded channel) comes
   * first: job watchers read nothing else. Then the global step (the global history and the
   * all-jobs channel). Each step is sent again until it is answered (a failover between them
   * resends the second alone; receipts make resends no-ops). Not atomic: a process that dies
   * between the steps leaves the event out of the all-jobs feed and the global history, and an
   * all-jobs watcher may see a job's event a moment after that job's own watchers.
   */
  private async publishInSteps(draft: JobEventDraft): Promise<number> {
    const k = this.keyspace;
    const jobId = draft.job_id;
    const token = randomUUID();
    const draftJson = encodeEventDraft(draft);
    const [seq] = await this.untilAnswered(() =>
      this.commands.tritonPublishJob(
        k.jobSeqKey(jobId),
        k.jobHistoryKey(jobId),
        k.publishReceiptKey(jobId, token),
        k.jobDraftKey(jobId),
        'job',
        ...this.jobStepArgs(draft, draftJson),
      ),
    );
    const json = `${draftJson.slice(0, -1)},"seq":${seq}}`;
    await this.untilAnswered(() =>
      this.commands.tritonPublishGlobal(
        k.globalHistoryKey,
        k.globalReceiptKey(token),
        'global',
        json,
        k.allJobsChannel,
        this.maxGlobal,
        RECEIPT_TTL_SECONDS,
        seq,
      ),
    );
    return seq;
  }

  /**
   * Sends a cluster call until it is answered, as a single server's connection holds a command
   * until Redis is back: an event is never dropped because a master is being replaced.
   */
  private async untilAnswered<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!retryable(err) || this.redis.status === 'end') throw err;
        if (attempt === 0) {
          this.logger.warn({ err }, 'Publishing an event failed; retrying');
        }
        await sleep(Math.min(50 * 2 ** Math.min(attempt, 5), 1000));
      }
    }
  }
}
