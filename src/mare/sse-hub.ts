import type { AllJobsStream } from './all-jobs-stream.js';
import type { JobState } from './job-snapshots.js';
import type { JobStream } from './job-stream.js';
import type { LiveEvent } from './live-event.js';
import { SseWriteBatch, type SseStream } from './sse-stream.js';

/** Connections visited per turn of the event loop when sending heartbeats. */
const HEARTBEAT_SLICE = 500;

/**
 * Where the hub takes its events from: a job's events flow while a stream here watches the job,
 * every job's while an all-jobs stream is open. Each `watch…` resolves once they flow.
 */
export interface EventSubscriptions {
  /** A stream here watches the job: its events are to flow (held once per call). */
  watchJob(jobId: string): Promise<void>;
  /** A stream of the job closed: one hold of {@link EventSubscriptions.watchJob} is let go. */
  unwatchJob(jobId: string): void;
  /** An all-jobs stream opened: every job's events are to flow (held once per call). */
  watchAll(): Promise<void>;
  /** An all-jobs stream closed: one hold of {@link EventSubscriptions.watchAll} is let go. */
  unwatchAll(): void;
}

/** Subscriptions of a hub whose events are handed to it directly (tests, benchmarks). */
const ALWAYS_SUBSCRIBED: EventSubscriptions = {
  watchJob: () => Promise.resolve(),
  unwatchJob: () => undefined,
  watchAll: () => Promise.resolve(),
  unwatchAll: () => undefined,
};

/** How the hub keeps connections alive and reports on them. */
export interface SseHubOptions {
  /** What to subscribe to for the streams it holds. @defaultValue none needed */
  subscriptions?: EventSubscriptions;
  /** Interval of the heartbeat comment. @defaultValue 15000 */
  heartbeatMs?: number;
  /** Called with the number of open connections of a kind whenever it changes. */
  onCountChange?: (kind: 'job' | 'global', count: number) => void;
  /**
   * Called after each turn of the event loop with the live events written to sockets in it
   * (each once): what delivery time is measured on.
   */
  onFlushed?: (events: readonly LiveEvent[]) => void;
}

/**
 * Every open SSE connection of this process, indexed by job, so that an event costs work only
 * for the connections that want it: the hub registers streams and broadcasts to them, nothing
 * else. One shared, unref'd timer sends every heartbeat.
 */
export class SseHub {
  /** Gathers the writes of each turn of the event loop into one system call per connection. */
  readonly batch: SseWriteBatch;
  private readonly byJob = new Map<string, Set<JobStream>>();
  private readonly allJobs = new Set<AllJobsStream>();
  private jobCount = 0;
  private beating = false;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly onCountChange: SseHubOptions['onCountChange'];
  private readonly subscriptions: EventSubscriptions;

  constructor({
    heartbeatMs = 15_000,
    onCountChange,
    onFlushed,
    subscriptions = ALWAYS_SUBSCRIBED,
  }: SseHubOptions = {}) {
    this.onCountChange = onCountChange;
    this.subscriptions = subscriptions;
    this.batch = new SseWriteBatch({ onFlushed });
    this.heartbeatTimer = setInterval(() => this.beat(), heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Open connections, both kinds. */
  get size(): number {
    return this.jobCount + this.allJobs.size;
  }

  /** Whether a stream here watches the job. */
  watches(jobId: string): boolean {
    return this.byJob.has(jobId);
  }

  /** Jobs with at least one watcher here. */
  watchedJobIds(): string[] {
    return [...this.byJob.keys()];
  }

  /**
   * Registers a job's stream until it closes, and watches the job's events for it: resolves
   * once they flow (read history after that, and nothing is missed in between).
   */
  addJobStream(stream: JobStream): Promise<void> {
    let set = this.byJob.get(stream.jobId);
    if (!set) this.byJob.set(stream.jobId, (set = new Set()));
    set.add(stream);
    this.jobCount++;
    this.onCountChange?.('job', this.jobCount);
    const watching = this.subscriptions.watchJob(stream.jobId);
    stream.onClose = () => {
      const current = this.byJob.get(stream.jobId);
      if (!current?.delete(stream)) return;
      if (current.size === 0) this.byJob.delete(stream.jobId);
      this.jobCount--;
      this.onCountChange?.('job', this.jobCount);
      this.subscriptions.unwatchJob(stream.jobId);
    };
    return watching;
  }

  /** Registers an all-jobs stream until it closes; resolves once every job's events flow. */
  addAllJobsStream(stream: AllJobsStream): Promise<void> {
    this.allJobs.add(stream);
    this.onCountChange?.('global', this.allJobs.size);
    const watching = this.subscriptions.watchAll();
    stream.onClose = () => {
      if (!this.allJobs.delete(stream)) return;
      this.onCountChange?.('global', this.allJobs.size);
      this.subscriptions.unwatchAll();
    };
    return watching;
  }

  /** Hands an event from its job's channel to the job's watchers. */
  broadcastJob(live: LiveEvent): void {
    const watchers = this.byJob.get(live.jobId);
    if (watchers) for (const stream of watchers) stream.deliver(live);
  }

  /** Hands an event from the all-jobs channel to every all-jobs watcher. */
  broadcastAll(live: LiveEvent): void {
    for (const stream of this.allJobs) stream.deliver(live);
  }

  /** Sends a job's watchers its whole state, when its events could not be replayed. */
  resyncJob(jobId: string, state: JobState, seq: number): void {
    const watchers = this.byJob.get(jobId);
    if (watchers) for (const stream of [...watchers]) stream.resync(state, seq);
  }

  /** Ends every connection after `last` (e.g. a `retry:` hint on shutdown). */
  closeAll(last = ''): void {
    for (const set of [...this.byJob.values()]) for (const stream of [...set]) stream.end(last);
    for (const stream of [...this.allJobs]) stream.end(last);
  }

  /** Stops the heartbeat. Safe to call twice. */
  close(): void {
    clearInterval(this.heartbeatTimer);
  }

  /**
   * Visits every connection, in slices that yield to the event loop in between: at 10,000
   * connections one synchronous pass would hold up event delivery for a noticeable time.
   */
  private beat(): void {
    if (this.beating) return;
    const streams: SseStream[] = [...this.allJobs];
    for (const set of this.byJob.values()) for (const stream of set) streams.push(stream);
    this.beating = true;
    let next = 0;
    const slice = () => {
      const end = Math.min(next + HEARTBEAT_SLICE, streams.length);
      for (; next < end; next++) streams[next]?.heartbeat();
      if (next < streams.length) setImmediate(slice);
      else this.beating = false;
    };
    slice();
  }
}
