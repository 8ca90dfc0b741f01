import type { ServerResponse } from 'node:http';
import {
  closingComment,
  formatSseEvent,
  globalEventId,
  HEARTBEAT_FRAME,
  isTerminalEvent,
  jobSnapshot,
  TERMINAL_STATUSES,
  type JobEvent,
  type JobStatusDocument,
} from '../contract/index.js';
import type { StoredEvent } from './event-history.js';

/**
 * One published event as the hub fans it out. Its SSE frames are built at most once per
 * process, however many connections receive it.
 */
export class LiveEvent {
  readonly terminal: boolean;
  readonly progress: boolean;
  private jobFrameText: string | undefined;
  private globalFrameText: string | undefined;

  constructor(
    readonly event: JobEvent,
    /** The JSON exactly as published: written as is, never re-encoded. */
    readonly json: string,
  ) {
    this.terminal = isTerminalEvent(event);
    this.progress = event.event_type === 'job:progress';
  }

  /** Frame for a job's own stream: `id: {seq}`. */
  get jobFrame(): string {
    return (this.jobFrameText ??= formatSseEvent(this.event.seq, this.json));
  }

  /** Frame for the all-jobs stream: `id: {job_id}:{seq}`. */
  get globalFrame(): string {
    return (this.globalFrameText ??= formatSseEvent(
      globalEventId(this.event.job_id, this.event.seq),
      this.json,
    ));
  }
}

/**
 * Streams written to during this turn of the event loop. Redis often delivers several events in
 * one read; gathering each connection's frames and sending them together at the end of the turn
 * costs one system call per connection instead of one per event.
 */
const corkedStreams: SseStream[] = [];

function uncorkAll(): void {
  for (const stream of corkedStreams.splice(0)) stream.uncork();
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // nginx and similar proxies buffer responses unless told not to.
  'x-accel-buffering': 'no',
  // The seed's test page is opened from a file or another origin.
  'access-control-allow-origin': '*',
} as const;

export interface SseStreamOptions {
  /**
   * Unsent bytes above which a connection counts as congested: its events wait (progress
   * coalesced, latest wins) until the socket drains. @defaultValue 64 KiB
   */
  highWaterBytes?: number;
  /** Events waiting on a congested connection beyond which it is cut (it can resume). @defaultValue 256 */
  maxPendingEvents?: number;
  /** Called when a connection is cut for not reading. */
  onSlowConsumer?: () => void;
}

/**
 * One SSE response. Until it opens it buffers live events, so that nothing published while
 * history is being read is lost. Once open it writes events as they come, unless the client
 * stops reading: then events wait in a bounded queue where a job's newer progress replaces
 * its older progress (lifecycle events are never dropped), and past the bound the connection
 * is cut; the client resumes from its Last-Event-ID.
 */
export abstract class SseStream {
  closed = false;
  opened = false;
  /** Whether anything was written since the last heartbeat. */
  private wroteSinceBeat = false;
  /** Whether writes are being gathered until the end of this turn of the event loop. */
  private corked = false;
  onClose: ((stream: SseStream) => void) | undefined;
  /** Live events that arrived before the stream opened. */
  private backlog: LiveEvent[] | null = [];
  /** Events waiting for a congested socket to drain; null while it is not congested. */
  private pending: LiveEvent[] | null = null;
  /** Index in `pending` of each job's waiting progress event (made when first needed). */
  private pendingProgress: Map<string, number> | undefined;
  private readonly highWaterBytes: number;
  private readonly maxPendingEvents: number;
  private readonly onSlowConsumer: (() => void) | undefined;

  constructor(
    protected readonly res: ServerResponse,
    { highWaterBytes = 64 * 1024, maxPendingEvents = 256, onSlowConsumer }: SseStreamOptions = {},
  ) {
    this.highWaterBytes = highWaterBytes;
    this.maxPendingEvents = maxPendingEvents;
    this.onSlowConsumer = onSlowConsumer;
    res.once('close', () => this.markClosed());
  }

  /** Whether this stream wants a live event (not yet sent, not a duplicate). */
  protected abstract accept(live: LiveEvent): boolean;
  /** The frame this stream writes for a live event. */
  protected abstract frameOf(live: LiveEvent): string;
  /** Runs after a live event was written (a job stream ends after its terminal event). */
  protected afterSend(_live: LiveEvent): void {}

  /** Hands a live event to this connection. */
  deliver(live: LiveEvent): void {
    if (this.closed) return;
    if (this.backlog) {
      this.backlog.push(live);
      return;
    }
    if (!this.accept(live)) return;
    if (this.pending) this.queue(live);
    else this.send(live);
  }

  /**
   * Writes the heartbeat comment, unless the connection carried something since the last
   * beat (proxies only need to see bytes) or is busy anyway.
   */
  heartbeat(): void {
    if (this.wroteSinceBeat) {
      this.wroteSinceBeat = false;
      return;
    }
    if (this.opened && !this.pending) this.write(HEARTBEAT_FRAME);
    this.wroteSinceBeat = false;
  }

  /** Writes the SSE headers and `first` (in one chunk), then what arrived meanwhile. */
  protected openWith(first: string): void {
    if (this.closed) return;
    this.res.writeHead(200, SSE_HEADERS);
    this.opened = true;
    const backlog = this.backlog ?? [];
    this.backlog = null;
    this.write(first);
    for (const live of backlog) this.deliver(live);
  }

  /** Writes raw text, and notices when the client stops keeping up. */
  protected write(chunk: string): void {
    if (this.closed || chunk.length === 0) return;
    if (!this.corked) {
      this.corked = true;
      this.res.cork();
      if (corkedStreams.push(this) === 1) process.nextTick(uncorkAll);
    }
    this.res.write(chunk);
    this.wroteSinceBeat = true;
  }

  /**
   * Sends what this turn of the event loop wrote, in one system call, and notices when the
   * client stops keeping up.
   */
  uncork(): void {
    this.corked = false;
    if (this.closed) return;
    this.res.uncork();
    // Congested only while the socket itself is backed up: 'drain' then says when it is not.
    if (
      !this.pending &&
      this.res.writableNeedDrain &&
      this.res.writableLength > this.highWaterBytes
    ) {
      this.pending = [];
      this.res.once('drain', () => this.flush());
    }
  }

  /** Ends the response after `last` (a closing comment, a `retry:` hint). */
  end(last = ''): void {
    if (this.closed) return;
    this.closed = true;
    if (this.opened) this.res.end(last);
    else this.res.destroy();
    this.onClose?.(this);
  }

  /** Forgets a stream that never opened, leaving its response to the caller (an error reply). */
  cancel(): void {
    this.markClosed();
  }

  private send(live: LiveEvent): void {
    this.write(this.frameOf(live));
    this.afterSend(live);
  }

  private queue(live: LiveEvent): void {
    const pending = this.pending;
    if (!pending) return;
    const jobId = live.event.job_id;
    if (live.progress) {
      this.pendingProgress ??= new Map();
      const index = this.pendingProgress.get(jobId);
      if (index !== undefined) {
        pending[index] = live;
        return;
      }
      this.pendingProgress.set(jobId, pending.length);
    } else {
      // A later progress event must not overtake this one.
      this.pendingProgress?.delete(jobId);
    }
    pending.push(live);
    if (pending.length > this.maxPendingEvents) {
      this.onSlowConsumer?.();
      this.res.destroy();
      this.markClosed();
    }
  }

  private flush(): void {
    const queued = this.pending ?? [];
    this.pending = null;
    this.pendingProgress = undefined;
    for (const live of queued) {
      if (this.closed) return;
      if (this.pending) this.queue(live);
      else this.send(live);
    }
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = null;
    this.onClose?.(this);
  }
}

/** `GET /v1/triton/jobs/{id}/subscribe`: one job, `id: {seq}`, closes after the terminal event. */
export class JobStream extends SseStream {
  constructor(
    res: ServerResponse,
    readonly jobId: string,
    /** Highest seq the client has (or will have); nothing at or below it is written again. */
    private lastSeq: number,
    options?: SseStreamOptions,
  ) {
    super(res, options);
  }

  /** Highest seq this client has or is about to be sent. */
  get seq(): number {
    return this.lastSeq;
  }

  /**
   * Opens with `preamble` (the `retry:` line, a snapshot…), then the replayed history, then the
   * live events that arrived while history was read, each at most once, in `seq` order.
   * `resyncedTo` is the seq of a snapshot in the preamble, if there is one.
   */
  open(preamble: string, history: readonly StoredEvent[], resyncedTo?: number): void {
    // After a resync the snapshot defines what the client has, whatever it claimed before.
    if (resyncedTo !== undefined) this.lastSeq = resyncedTo;
    let text = preamble;
    let terminal: 'completed' | 'failed' | undefined;
    for (const { event, json } of history) {
      if (event.seq <= this.lastSeq) continue;
      text += formatSseEvent(event.seq, json);
      this.lastSeq = event.seq;
      if (isTerminalEvent(event)) {
        terminal = event.status;
        break;
      }
    }
    if (terminal) {
      this.openWith('');
      this.end(text + closingComment(terminal));
    } else {
      this.openWith(text);
    }
  }

  /** Sends the job's whole state (when its events cannot be replayed); ends if it is finished. */
  resync(doc: JobStatusDocument, seq: number): void {
    if (this.closed || !this.opened) return;
    this.lastSeq = Math.max(this.lastSeq, seq);
    const frame = formatSseEvent(seq, JSON.stringify(jobSnapshot(doc, seq)));
    if (TERMINAL_STATUSES.has(doc.status)) {
      this.end(frame + closingComment(doc.status as 'completed' | 'failed'));
    } else {
      this.write(frame);
    }
  }

  protected accept(live: LiveEvent): boolean {
    if (live.event.seq <= this.lastSeq) return false;
    this.lastSeq = live.event.seq;
    return true;
  }

  protected frameOf(live: LiveEvent): string {
    return live.jobFrame;
  }

  protected override afterSend(live: LiveEvent): void {
    if (live.terminal && isTerminalEvent(live.event)) this.end(closingComment(live.event.status));
  }
}

/** `GET /v1/triton/events`: every job, `id: {job_id}:{seq}`, never closes by itself. */
export class GlobalStream extends SseStream {
  /** Per job, the last seq that history replayed: only live events racing the replay can repeat it. */
  private replayed: Map<string, number> | undefined;

  /** Opens with `preamble`, the replayed history, then buffered live events not already replayed. */
  open(preamble: string, history: readonly StoredEvent[]): void {
    let text = preamble;
    const replayed = new Map<string, number>();
    for (const { event, json } of history) {
      text += formatSseEvent(globalEventId(event.job_id, event.seq), json);
      if (event.seq > (replayed.get(event.job_id) ?? 0)) replayed.set(event.job_id, event.seq);
    }
    this.replayed = replayed;
    this.openWith(text);
    // Live events from here on were published after the replay was read.
    this.replayed = undefined;
  }

  protected accept(live: LiveEvent): boolean {
    const replayed = this.replayed?.get(live.event.job_id);
    return replayed === undefined || live.event.seq > replayed;
  }

  protected frameOf(live: LiveEvent): string {
    return live.globalFrame;
  }
}

/** Connections visited per turn of the event loop when sending heartbeats. */
const HEARTBEAT_SLICE = 500;

export interface SseHubOptions {
  /** Interval of the heartbeat comment. @defaultValue 15000 */
  heartbeatMs?: number;
  /** Called with the number of open connections of a kind whenever it changes. */
  onCountChange?: (kind: 'job' | 'global', count: number) => void;
  /** Jobs whose last dispatched seq is remembered, to drop repeats. @defaultValue 100000 */
  rememberJobs?: number;
}

/**
 * Every open SSE connection of this process, indexed by job, so that an event costs work only
 * for the connections that want it. One shared, unref'd timer sends every heartbeat.
 */
export class SseHub {
  private readonly byJob = new Map<string, Set<JobStream>>();
  private readonly global = new Set<GlobalStream>();
  /** Last seq dispatched per job (insertion-ordered, oldest evicted first). */
  private readonly lastDispatched = new Map<string, number>();
  private jobCount = 0;
  private beating = false;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly onCountChange: SseHubOptions['onCountChange'];
  private readonly rememberJobs: number;

  constructor({ heartbeatMs = 15_000, onCountChange, rememberJobs = 100_000 }: SseHubOptions = {}) {
    this.onCountChange = onCountChange;
    this.rememberJobs = rememberJobs;
    this.heartbeatTimer = setInterval(() => this.beat(), heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Open connections, both kinds. */
  get size(): number {
    return this.jobCount + this.global.size;
  }

  /** Jobs with at least one watcher here, and the last seq dispatched for each (0: none). */
  watchedJobs(): Array<{ jobId: string; lastSeq: number }> {
    return [...this.byJob.keys()].map((jobId) => ({
      jobId,
      lastSeq: this.lastDispatched.get(jobId) ?? 0,
    }));
  }

  addJobStream(stream: JobStream): void {
    let set = this.byJob.get(stream.jobId);
    if (!set) this.byJob.set(stream.jobId, (set = new Set()));
    set.add(stream);
    this.jobCount++;
    this.onCountChange?.('job', this.jobCount);
    stream.onClose = () => {
      const current = this.byJob.get(stream.jobId);
      if (!current?.delete(stream)) return;
      if (current.size === 0) this.byJob.delete(stream.jobId);
      this.jobCount--;
      this.onCountChange?.('job', this.jobCount);
    };
  }

  addGlobalStream(stream: GlobalStream): void {
    this.global.add(stream);
    this.onCountChange?.('global', this.global.size);
    stream.onClose = () => {
      if (this.global.delete(stream)) this.onCountChange?.('global', this.global.size);
    };
  }

  /**
   * Fans one event out to its job's watchers and to every all-jobs watcher. An event whose seq
   * is not above the last one dispatched for its job (a repeat, from a reconciliation racing
   * Pub/Sub) is dropped. Returns whether it was dispatched.
   */
  publish(live: LiveEvent): boolean {
    const { job_id: jobId, seq } = live.event;
    const last = this.lastDispatched.get(jobId);
    if (last !== undefined) {
      if (seq <= last) return false;
      this.lastDispatched.delete(jobId);
    } else if (this.lastDispatched.size >= this.rememberJobs) {
      const oldest = this.lastDispatched.keys().next().value;
      if (oldest !== undefined) this.lastDispatched.delete(oldest);
    }
    this.lastDispatched.set(jobId, seq);
    const watchers = this.byJob.get(jobId);
    if (watchers) for (const stream of watchers) stream.deliver(live);
    for (const stream of this.global) stream.deliver(live);
    return true;
  }

  /** Sends a job's watchers its whole state, when its events could not be replayed. */
  resyncJob(jobId: string, doc: JobStatusDocument, seq: number): void {
    const watchers = this.byJob.get(jobId);
    if (watchers) for (const stream of [...watchers]) stream.resync(doc, seq);
  }

  /** Ends every connection after `last` (e.g. a `retry:` hint on shutdown). */
  closeAll(last = ''): void {
    for (const set of [...this.byJob.values()]) for (const stream of [...set]) stream.end(last);
    for (const stream of [...this.global]) stream.end(last);
  }

  close(): void {
    clearInterval(this.heartbeatTimer);
  }

  /**
   * Visits every connection, in slices that yield to the event loop in between: at 10,000
   * connections one synchronous pass would hold up event delivery for a noticeable time.
   */
  private beat(): void {
    if (this.beating) return;
    const streams: SseStream[] = [...this.global];
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
