import {
  AppError,
  decodeEvent,
  HISTORY_FIELD_EVENT,
  HISTORY_FIELD_GLOBAL_ID,
  historyEntryField,
  jobHistoryEntryId,
  type JobEvent,
  type Keyspace,
  decodeDraftHash,
  type DraftState,
  withStreamId,
} from '../contract/index.js';
import type { RedisClient } from '../common/redis.js';

/** One event read back from history: decoded, and its JSON exactly as it was published. */
export interface StoredEvent {
  event: JobEvent;
  json: string;
}

/** What history holds for one job after a given `seq`. */
export interface JobHistory {
  /** Events with a higher `seq`, in order. */
  events: StoredEvent[];
  /** The job's newest event, or undefined when it has no history (never had, or expired). */
  latest: StoredEvent | undefined;
  /** The job's draft as of `seq`: templates done, and the text of the one being written. */
  draft: DraftState | undefined;
  /**
   * The job's last published seq, from its seq counter (0 when there is none): what the draft
   * is as of, also when the history itself expired or was deleted.
   */
  seq: number;
}

type StreamEntry = [id: string, fields: string[]];

/** Largest number of events one replay sends; more than that and the client resyncs. */
export const MAX_REPLAY = 10_000;

/**
 * Decodes stream entries. Entries of the global stream (`global`) get their own entry id
 * appended as `stream_id`, as the all-jobs channel carries them.
 */
function decodeEntries(entries: StreamEntry[] | null | undefined, global = false): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (const [id, fields] of entries ?? []) {
    const stored = historyEntryField(fields, HISTORY_FIELD_EVENT);
    if (stored === undefined) continue;
    const json = global ? withStreamId(stored, id) : stored;
    try {
      out.push({ event: decodeEvent(json), json });
    } catch {
      // A malformed entry (written by something else) is skipped, never replayed.
    }
  }
  return out;
}

/** Seconds a client is told to wait when history cannot be read. */
const RETRY_AFTER_SECONDS = 2;

/** What reading history needs. */
export interface EventHistoryOptions {
  /** The connection to the Redis (or cluster) that carries triton's events; its owner closes it. */
  redis: RedisClient;
  keyspace: Keyspace;
}

/**
 * Reads the event history that triton's publisher keeps in Redis Streams. A read that Redis
 * cannot answer fails with `UPSTREAM_UNAVAILABLE` (503, with Retry-After).
 */
export class EventHistory {
  private readonly redis: RedisClient;
  private readonly keyspace: Keyspace;

  constructor({ redis, keyspace }: EventHistoryOptions) {
    this.redis = redis;
    this.keyspace = keyspace;
  }

  /**
   * A job's events after `afterSeq`, its newest event, its draft and its last seq, in one round
   * trip and as of one moment (the reads run as one transaction).
   */
  readJob(jobId: string, afterSeq: number): Promise<JobHistory> {
    const key = this.keyspace.jobHistoryKey(jobId);
    return this.read(async () => {
      const results = await this.redis
        .multi()
        .xrange(key, jobHistoryEntryId(afterSeq + 1), '+', 'COUNT', MAX_REPLAY)
        .xrevrange(key, '+', '-', 'COUNT', 1)
        .hgetall(this.keyspace.jobDraftKey(jobId))
        .get(this.keyspace.jobSeqKey(jobId))
        .exec();
      const after = results?.[0]?.[1] as StreamEntry[] | undefined;
      const last = results?.[1]?.[1] as StreamEntry[] | undefined;
      const draft = results?.[2]?.[1] as Record<string, string> | undefined;
      const counter = Number(results?.[3]?.[1] ?? 0);
      const latest = decodeEntries(last)[0];
      return {
        events: decodeEntries(after),
        latest,
        draft: decodeDraftHash(draft),
        seq: Math.max(latest?.event.seq ?? 0, Number.isSafeInteger(counter) ? counter : 0),
      };
    });
  }

  /**
   * Every job's events published after the global position `streamId` (an event's
   * `stream_id`), or undefined when that event is no longer in history (the global stream was
   * trimmed past it), so the caller can tell the client to resync.
   */
  readGlobalAfterAnchor(streamId: string): Promise<StoredEvent[] | undefined> {
    return this.read(() => this.globalAfterAnchor(streamId));
  }

  /**
   * Every job's events published after the event `(jobId, seq)` (an all-jobs event id without
   * its position), found through the global position its job's history keeps with it (field
   * `g`); undefined when there is none (the job's history expired, or, on a cluster, it is
   * written before the global step and keeps none) or the global stream was trimmed past it.
   */
  readGlobalAfter(jobId: string, seq: number): Promise<StoredEvent[] | undefined> {
    return this.read(async () => {
      const entry = (await this.redis.xrange(
        this.keyspace.jobHistoryKey(jobId),
        jobHistoryEntryId(seq),
        jobHistoryEntryId(seq),
      )) as StreamEntry[];
      const position = entry[0]
        ? historyEntryField(entry[0][1], HISTORY_FIELD_GLOBAL_ID)
        : undefined;
      return position ? this.globalAfterAnchor(position) : undefined;
    });
  }

  private async globalAfterAnchor(streamId: string): Promise<StoredEvent[] | undefined> {
    // Read from the anchor itself: if it is gone, the events after it may be trimmed too.
    const entries = (await this.redis.xrange(
      this.keyspace.globalHistoryKey,
      streamId,
      '+',
      'COUNT',
      MAX_REPLAY + 1,
    )) as StreamEntry[];
    if (entries[0]?.[0] !== streamId) return undefined;
    return decodeEntries(entries.slice(1), true);
  }

  /** Up to `count` events of all jobs published after the global position `streamId`, oldest first. */
  readGlobalAfterPosition(streamId: string, count = MAX_REPLAY): Promise<StoredEvent[]> {
    return this.read(async () => {
      const entries = (await this.redis.xrange(
        this.keyspace.globalHistoryKey,
        `(${streamId}`,
        '+',
        'COUNT',
        count,
      )) as StreamEntry[];
      return decodeEntries(entries, true);
    });
  }

  /** The newest position in the global history ('0-0' while it is empty). */
  lastGlobalPosition(): Promise<string> {
    return this.read(async () => {
      const entries = (await this.redis.xrevrange(
        this.keyspace.globalHistoryKey,
        '+',
        '-',
        'COUNT',
        1,
      )) as StreamEntry[];
      return entries[0]?.[0] ?? '0-0';
    });
  }

  /** The newest `count` events of all jobs, oldest first. */
  readGlobalRecent(count: number): Promise<StoredEvent[]> {
    if (count <= 0) return Promise.resolve([]);
    return this.read(async () => {
      const entries = (await this.redis.xrevrange(
        this.keyspace.globalHistoryKey,
        '+',
        '-',
        'COUNT',
        count,
      )) as StreamEntry[];
      return decodeEntries(entries.reverse(), true);
    });
  }

  private async read<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw new AppError(
        'UPSTREAM_UNAVAILABLE',
        'Job event history is unavailable (Redis does not answer); retry shortly',
        RETRY_AFTER_SECONDS,
        { cause: err },
      );
    }
  }
}
