import type { ServerResponse } from 'node:http';
import {
  closingComment,
  formatSseEvent,
  globalEventId,
  HEARTBEAT_FRAME,
  isTerminalEvent,
  type JobEvent,
} from '../contract/index.js';
import type { StoredEvent } from './event-history.js';

/**
 * One published event as the hub fans it out. Its SSE frames are built at most once per
 * process, however many connections receive it.
 */
export class LiveEvent {
  readonly terminal: boolean;
  private jobFrameText: string | undefined;
  private globalFrameText: string | undefined;

  constructor(
    readonly event: JobEvent,
    /** The JSON exactly as published: written as is, never re-encoded. */
    readonly json: string,
  ) {
    this.terminal = isTerminalEvent(event);
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

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // nginx and similar proxies buffer responses unless told not to.
  'x-accel-buffering': 'no',
  // The seed's test page is opened from a file or another origin.
  'access-control-allow-origin': '*',
} as const;

export interface SseStreamOptions {
  /** Bytes a connection may have waiting to be sent before it is cut (it can resume). */
  maxBufferedBytes: number;
}

/**
 * One SSE response. Until {@link SseStream.open} it buffers live events, so that nothing
 * published while history is being read is lost; afterwards it writes them as they come.
 */
export abstract class SseStream {
  closed = false;
  opened = false;
  /** Live events that arrived before the stream opened. */
  protected backlog: LiveEvent[] | null = [];
  onClose: ((stream: SseStream) => void) | undefined;

  constructor(
    protected readonly res: ServerResponse,
    private readonly options: SseStreamOptions,
  ) {
    res.once('close', () => this.markClosed());
  }

  /** Hands a live event to this connection (buffered until the stream is open). */
  abstract deliver(live: LiveEvent): void;

  /** Writes the SSE headers and `first`, then whatever arrived meanwhile. */
  protected openWith(first: string, drain: (backlog: LiveEvent[]) => void): void {
    if (this.closed) return;
    this.res.writeHead(200, SSE_HEADERS);
    this.opened = true;
    const backlog = this.backlog ?? [];
    this.backlog = null;
    this.res.cork();
    this.write(first);
    drain(backlog);
    process.nextTick(() => this.res.uncork());
  }

  write(chunk: string): void {
    if (this.closed || chunk.length === 0) return;
    this.res.write(chunk);
    if (this.res.writableLength > this.options.maxBufferedBytes) {
      // A client that stopped reading: cut it loose rather than buffer without bound.
      this.res.destroy();
      this.markClosed();
    }
  }

  /** Ends the response after `last` (a closing comment, say). */
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

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.(this);
  }
}

/** `GET /v1/triton/jobs/{id}/subscribe`: one job, `id: {seq}`, closes after the terminal event. */
export class JobStream extends SseStream {
  constructor(
    res: ServerResponse,
    readonly jobId: string,
    /** Highest seq the client has; nothing at or below it is written again. */
    private lastSeq: number,
    options: SseStreamOptions,
  ) {
    super(res, options);
  }

  deliver(live: LiveEvent): void {
    if (this.closed) return;
    if (this.backlog) {
      this.backlog.push(live);
      return;
    }
    this.writeLive(live);
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
    let terminal: JobEvent | undefined;
    for (const { event, json } of history) {
      if (event.seq <= this.lastSeq) continue;
      text += formatSseEvent(event.seq, json);
      this.lastSeq = event.seq;
      if (isTerminalEvent(event)) {
        terminal = event;
        break;
      }
    }
    this.openWith(text, (backlog) => {
      if (terminal) return;
      for (const live of backlog) {
        this.writeLive(live);
        if (this.closed) return;
      }
    });
    if (terminal && isTerminalEvent(terminal)) this.end(closingComment(terminal.status));
  }

  /** Ends at once after a snapshot that is already terminal. */
  finish(status: 'completed' | 'failed'): void {
    this.end(closingComment(status));
  }

  private writeLive(live: LiveEvent): void {
    const seq = live.event.seq;
    if (seq <= this.lastSeq) return;
    this.lastSeq = seq;
    this.write(live.jobFrame);
    if (live.terminal && isTerminalEvent(live.event)) this.end(closingComment(live.event.status));
  }
}

/** `GET /v1/triton/events`: every job, `id: {job_id}:{seq}`, never closes by itself. */
export class GlobalStream extends SseStream {
  deliver(live: LiveEvent): void {
    if (this.closed) return;
    if (this.backlog) {
      this.backlog.push(live);
      return;
    }
    this.write(live.globalFrame);
  }

  /** Opens with `preamble`, the replayed history, then buffered live events not already replayed. */
  open(preamble: string, history: readonly StoredEvent[]): void {
    let text = preamble;
    // Only live events that raced the history read can repeat it: remember what was replayed.
    const replayed = new Map<string, number>();
    for (const { event, json } of history) {
      text += formatSseEvent(globalEventId(event.job_id, event.seq), json);
      const seen = replayed.get(event.job_id) ?? 0;
      if (event.seq > seen) replayed.set(event.job_id, event.seq);
    }
    this.openWith(text, (backlog) => {
      for (const live of backlog) {
        if (live.event.seq <= (replayed.get(live.event.job_id) ?? 0)) continue;
        this.write(live.globalFrame);
      }
    });
  }
}

export interface SseHubOptions {
  /** Interval of the heartbeat comment. @defaultValue 15000 */
  heartbeatMs?: number;
  /** Called with the number of open connections whenever it changes. */
  onCountChange?: (kind: 'job' | 'global', count: number) => void;
}

/**
 * Every open SSE connection of this process, indexed by job, so that an event costs work only
 * for the connections that want it. One shared, unref'd timer sends every heartbeat.
 */
export class SseHub {
  private readonly byJob = new Map<string, Set<JobStream>>();
  private readonly global = new Set<GlobalStream>();
  private jobCount = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly onCountChange: SseHubOptions['onCountChange'];

  constructor({ heartbeatMs = 15_000, onCountChange }: SseHubOptions = {}) {
    this.onCountChange = onCountChange;
    this.heartbeat = setInterval(() => this.beat(), heartbeatMs);
    this.heartbeat.unref();
  }

  /** Open connections, both kinds. */
  get size(): number {
    return this.jobCount + this.global.size;
  }

  /** Jobs that have at least one watcher here. */
  get watchedJobs(): IterableIterator<string> {
    return this.byJob.keys();
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

  /** Fans one published event out to its job's watchers and to every all-jobs watcher. */
  publish(live: LiveEvent): void {
    const watchers = this.byJob.get(live.event.job_id);
    if (watchers) for (const stream of watchers) stream.deliver(live);
    for (const stream of this.global) stream.deliver(live);
  }

  /** Ends every connection after `last` (e.g. a `retry:` hint on shutdown). */
  closeAll(last = ''): void {
    for (const set of [...this.byJob.values()]) for (const stream of [...set]) stream.end(last);
    for (const stream of [...this.global]) stream.end(last);
  }

  stop(): void {
    clearInterval(this.heartbeat);
  }

  private beat(): void {
    for (const set of this.byJob.values()) {
      for (const stream of set) if (stream.opened) stream.write(HEARTBEAT_FRAME);
    }
    for (const stream of this.global) if (stream.opened) stream.write(HEARTBEAT_FRAME);
  }
}
