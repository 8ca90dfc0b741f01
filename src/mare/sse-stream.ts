import type { ServerResponse } from 'node:http';
import { AppError, HEARTBEAT_FRAME } from '../contract/index.js';
import { CORS_RESPONSE_HEADERS } from './cors-policy.js';
import type { LiveEvent } from './live-event.js';

/** The response headers of every SSE stream, but for CORS. */
export const SSE_BASE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // nginx and similar proxies buffer responses unless told not to.
  'x-accel-buffering': 'no',
});

/**
 * The response headers of an SSE stream that any origin may read. Streams are written past the
 * router, and past the CORS plugin with it: with a list of origins, a stream's CORS headers
 * come from the policy per request (`SseStreamOptions.headers`).
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...SSE_BASE_HEADERS,
  ...CORS_RESPONSE_HEADERS,
});

/** Writes between two looks at the clock while a turn gathers them. */
const WRITES_PER_CLOCK_CHECK = 1024;

/** Options of {@link SseWriteBatch}. */
export interface SseWriteBatchOptions {
  /**
   * Called after writes reached the sockets, with the live events written to every connection
   * that wants them (each event once, whatever the number of connections).
   */
  onFlushed?: ((events: readonly LiveEvent[]) => void) | undefined;
  /**
   * Longest a turn gathers writes before it sends what it has and goes on gathering. Redis may
   * hand over hundreds of events in one read; written to thousands of connections, that is
   * seconds of work, and no client should wait for all of it to see the first. Sending sooner
   * costs more system calls per event: at 10,000 connections a budget of 50 ms doubled the CPU
   * per delivery and 250 ms added a tenth (`npm run bench -- --scenario fanout --clients 10000`).
   * @defaultValue 1000
   */
  sendAfterMs?: number;
}

/**
 * Streams written to during this turn of the event loop, and the events that were. Redis often
 * delivers several events in one read; gathering each connection's frames and sending them
 * together at the end of the turn costs one system call per connection instead of one per event.
 * A turn that writes for longer than `sendAfterMs` sends what it has so far, then goes on. One
 * per hub.
 */
export class SseWriteBatch {
  private streams: SseStream[] = [];
  private events: LiveEvent[] = [];
  private scheduled = false;
  /** Writes since the batch began gathering, and when it began. */
  private writes = 0;
  private since = 0;
  private readonly onFlushed: ((events: readonly LiveEvent[]) => void) | undefined;
  private readonly sendAfterMs: number;

  constructor({ onFlushed, sendAfterMs = 1000 }: SseWriteBatchOptions = {}) {
    this.onFlushed = onFlushed;
    this.sendAfterMs = sendAfterMs;
  }

  /** Gathers `stream`'s writes until the end of this turn. */
  enlist(stream: SseStream): void {
    this.streams.push(stream);
    this.schedule();
  }

  /** Notes that `live` was written to one more connection in this turn. */
  wrote(live: LiveEvent): void {
    if (this.events[this.events.length - 1] !== live) this.events.push(live);
    this.schedule();
    if (
      ++this.writes % WRITES_PER_CLOCK_CHECK === 0 &&
      performance.now() - this.since >= this.sendAfterMs
    ) {
      this.sendSoFar();
    }
  }

  /** Sends every gathered write now. */
  flush(): void {
    this.scheduled = false;
    const streams = this.streams;
    const events = this.events;
    this.streams = [];
    this.events = [];
    for (const stream of streams) stream.uncork();
    if (events.length > 0) this.onFlushed?.(events);
  }

  /**
   * Sends what was gathered so far in the middle of a turn. The event being written is left
   * for a later report: it may still be on its way to other connections.
   */
  private sendSoFar(): void {
    const current = this.events.pop();
    const streams = this.streams;
    const events = this.events;
    this.streams = [];
    this.events = current ? [current] : [];
    this.since = performance.now();
    for (const stream of streams) stream.uncork();
    if (events.length > 0) this.onFlushed?.(events);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.writes = 0;
    this.since = performance.now();
    process.nextTick(() => this.flush());
  }
}

/** How one SSE connection buffers for a client that does not keep up. */
export interface SseStreamOptions {
  /**
   * Unsent bytes above which a connection counts as congested: its events wait (a job's
   * progress coalesced, latest wins; a template's deltas joined) until the socket drains.
   * @defaultValue 64 KiB
   */
  highWaterBytes?: number;
  /** Events waiting on a congested connection beyond which it is cut (it can resume). @defaultValue 256 */
  maxPendingEvents?: number;
  /** Called when a connection is cut for not reading. */
  onSlowConsumer?: () => void;
  /** The response's headers. @defaultValue {@link SSE_HEADERS} */
  headers?: Readonly<Record<string, string>>;
}

/**
 * One SSE response. Until it opens it buffers live events, so that nothing published while
 * history is being read is lost. Once open it writes events as they come, unless the client
 * stops reading: then events wait in a bounded queue, where an event merges into its job's last
 * waiting one when that is of the same kind (newer progress replaces older; a template's deltas
 * are joined into one; lifecycle events are never merged or dropped), and past the bound the
 * connection is cut; the client resumes from its Last-Event-ID.
 */
export abstract class SseStream {
  /** True once the response ended or the client went away. */
  closed = false;
  /** True once the headers were written. */
  opened = false;
  /** Called once when the stream closes, however it closes. */
  onClose: ((stream: SseStream) => void) | undefined;
  /** Whether anything was written since the last heartbeat. */
  private wroteSinceBeat = false;
  /** Whether writes are being gathered until the end of this turn of the event loop. */
  private corked = false;
  /** Live events that arrived before the stream opened. */
  private backlog: LiveEvent[] | null = [];
  /** Events waiting for a congested socket to drain; null while it is not congested. */
  private pending: LiveEvent[] | null = null;
  /**
   * Per job, the index in `pending` of its last waiting event, if that one may absorb a later
   * event with the same coalescing key (made when first needed).
   */
  private mergeable: Map<string, number> | undefined;
  private readonly highWaterBytes: number;
  private readonly maxPendingEvents: number;
  private readonly onSlowConsumer: (() => void) | undefined;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(
    protected readonly res: ServerResponse,
    private readonly batch: SseWriteBatch,
    {
      highWaterBytes = 64 * 1024,
      maxPendingEvents = 256,
      onSlowConsumer,
      headers = SSE_HEADERS,
    }: SseStreamOptions = {},
  ) {
    this.highWaterBytes = highWaterBytes;
    this.maxPendingEvents = maxPendingEvents;
    this.onSlowConsumer = onSlowConsumer;
    this.headers = headers;
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

  /**
   * Writes the SSE headers and `first` (in one chunk), then what arrived meanwhile, unless
   * `live` is false: then what arrived meanwhile is dropped, as the caller is about to end the
   * stream with what says it all (a finished job's last state).
   */
  protected openWith(first: string, { live = true }: { live?: boolean } = {}): void {
    if (this.closed) return;
    this.res.writeHead(200, this.headers);
    this.opened = true;
    const backlog = live ? (this.backlog ?? []) : [];
    this.backlog = null;
    this.write(first);
    for (const event of backlog) this.deliver(event);
  }

  /** Writes raw text, gathered with the rest of this turn's writes. */
  protected write(chunk: string): void {
    if (this.closed || chunk.length === 0) return;
    if (!this.corked) {
      this.corked = true;
      this.res.cork();
      this.batch.enlist(this);
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

  /** Events waiting for a congested socket (0 while it keeps up). */
  get pendingCount(): number {
    return this.pending?.length ?? 0;
  }

  private send(live: LiveEvent): void {
    this.write(this.frameOf(live));
    this.batch.wrote(live);
    this.afterSend(live);
  }

  private queue(live: LiveEvent): void {
    const pending = this.pending;
    if (!pending) return;
    const jobId = live.jobId;
    const key = live.coalesceKey;
    if (key !== undefined) {
      this.mergeable ??= new Map();
      const index = this.mergeable.get(jobId);
      const waiting = index === undefined ? undefined : pending[index];
      // Only the job's last waiting event may absorb it: merging into an earlier one would send
      // this event's content ahead of the job's events in between.
      if (index !== undefined && waiting?.coalesceKey === key) {
        pending[index] = waiting.mergedWith(live);
        return;
      }
      this.mergeable.set(jobId, pending.length);
    } else {
      this.mergeable?.delete(jobId);
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
    this.mergeable = undefined;
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

/**
 * Waits for a stream's subscription. Past `timeoutMs` (Redis does not answer, a failover is
 * under way) it fails with `UPSTREAM_UNAVAILABLE` (503 with Retry-After): the client comes back,
 * and the subscription, still held until the stream is dropped, is not lost meanwhile.
 */
export async function subscribedWithin(
  subscribed: Promise<void>,
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      subscribed,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new AppError(
                'UPSTREAM_UNAVAILABLE',
                'Job events are unavailable (Redis does not answer); retry shortly',
                2,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError(
      'UPSTREAM_UNAVAILABLE',
      'Job events are unavailable (Redis does not answer); retry shortly',
      2,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
}
