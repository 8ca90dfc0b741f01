import {
  decodeEvent,
  HISTORY_FIELD_EVENT,
  HISTORY_FIELD_GLOBAL_ID,
  historyEntryField,
  jobHistoryEntryId,
  type JobEvent,
  type Keyspace,
} from '../contract/index.js';
import type { Redis } from '../common/redis.js';

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
}

type StreamEntry = [id: string, fields: string[]];

/** Largest number of events one replay sends; more than that and the client resyncs. */
export const MAX_REPLAY = 10_000;

function decodeEntries(entries: StreamEntry[] | null | undefined): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (const [, fields] of entries ?? []) {
    const json = historyEntryField(fields, HISTORY_FIELD_EVENT);
    if (json === undefined) continue;
    try {
      out.push({ event: decodeEvent(json), json });
    } catch {
      // A malformed entry (written by something else) is skipped, never replayed.
    }
  }
  return out;
}

/** Reads the event history that triton's publisher keeps in Redis Streams. */
export class EventHistory {
  constructor(
    private readonly redis: Redis,
    private readonly keyspace: Keyspace,
  ) {}

  /** A job's events after `afterSeq`, and its newest event, in one round trip. */
  async readJob(jobId: string, afterSeq: number): Promise<JobHistory> {
    const key = this.keyspace.jobHistoryKey(jobId);
    const results = await this.redis
      .multi()
      .xrange(key, jobHistoryEntryId(afterSeq + 1), '+', 'COUNT', MAX_REPLAY)
      .xrevrange(key, '+', '-', 'COUNT', 1)
      .exec();
    const after = results?.[0]?.[1] as StreamEntry[] | undefined;
    const last = results?.[1]?.[1] as StreamEntry[] | undefined;
    return { events: decodeEntries(after), latest: decodeEntries(last)[0] };
  }

  /**
   * Every job's events published after the event `(jobId, seq)`, or undefined when that event is
   * no longer in history (its job's history expired), so the caller can tell the client to resync.
   */
  async readGlobalAfter(jobId: string, seq: number): Promise<StoredEvent[] | undefined> {
    const entry = (await this.redis.xrange(
      this.keyspace.jobHistoryKey(jobId),
      jobHistoryEntryId(seq),
      jobHistoryEntryId(seq),
    )) as StreamEntry[];
    const globalId = entry[0] ? historyEntryField(entry[0][1], HISTORY_FIELD_GLOBAL_ID) : undefined;
    if (!globalId) return undefined;
    const key = this.keyspace.globalHistoryKey;
    // The anchor itself must still be in the global stream, or events after it may be trimmed.
    const [anchor, rest] = await Promise.all([
      this.redis.xrange(key, globalId, globalId) as Promise<StreamEntry[]>,
      this.redis.xrange(key, `(${globalId}`, '+', 'COUNT', MAX_REPLAY) as Promise<StreamEntry[]>,
    ]);
    if (anchor.length === 0) return undefined;
    return decodeEntries(rest);
  }

  /** Every job's events published since `sinceMs` (Redis server time), oldest first. */
  async readGlobalSince(sinceMs: number): Promise<StoredEvent[]> {
    const entries = (await this.redis.xrange(
      this.keyspace.globalHistoryKey,
      String(Math.max(0, Math.floor(sinceMs))),
      '+',
      'COUNT',
      MAX_REPLAY,
    )) as StreamEntry[];
    return decodeEntries(entries);
  }

  /** The newest `count` events of all jobs, oldest first. */
  async readGlobalRecent(count: number): Promise<StoredEvent[]> {
    if (count <= 0) return [];
    const entries = (await this.redis.xrevrange(
      this.keyspace.globalHistoryKey,
      '+',
      '-',
      'COUNT',
      count,
    )) as StreamEntry[];
    return decodeEntries(entries.reverse());
  }
}
