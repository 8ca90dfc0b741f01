import { JobEvent, parseGlobalEventId, RESYNC_EVENT } from '../contract/index.js';
import { MareApiError } from './mare-api-error.js';
import { isEventStream, readEventStream, type SseMessage } from './read-event-stream.js';
import { Watch, type WatchHttp, type WatchOptions } from './watch.js';
import type { StreamTokenSource } from './mare-client.js';

/**
 * The body of the all-jobs stream's named `resync` event: the events this watch missed are no
 * longer in history, so whatever it shows should be reloaded. Live events follow.
 */
export interface StreamResync {
  event_type: 'stream:resync';
  /** Why, e.g. `history_unavailable`. */
  reason: string;
  timestamp: string;
}

function isStreamResync(value: unknown): value is StreamResync {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.event_type === 'stream:resync' &&
    typeof v.reason === 'string' &&
    typeof v.timestamp === 'string'
  );
}

/** What the all-jobs watch yields. */
export type AllJobsWatchItem = JobEvent | StreamResync;

/** Options of {@link MareClient.watchAll}. */
export interface AllJobsWatchOptions extends WatchOptions {
  /** Every job's events, once each, in the order mare-api publishes them. */
  onEvent?: (event: JobEvent) => void;
  /** History no longer covers what this watch missed: reload what you show. */
  onResync?: (notice: StreamResync) => void;
  /** Replay this many recent events on the first connection (at most 1000). @defaultValue 0 */
  history?: number;
  /** Resume after this event id (`{job_id}:{seq}:{stream_id}`) instead of starting fresh. */
  lastEventId?: string;
  /** Jobs whose highest `seq` is remembered for dropping duplicates. @defaultValue 10000 */
  maxTrackedJobs?: number;
  /** Items kept for a slow (or absent) iterator before the oldest are dropped. @defaultValue 10000 */
  maxBuffered?: number;
  /**
   * The stream token to open the all-jobs stream with, or where to get one for each connection
   * (see `JobWatchOptions.streamToken`).
   */
  streamToken?: string | StreamTokenSource;
}

/**
 * Follows every job's events on `GET /v1/triton/events`, across reconnects: resumes after the
 * last event id it received, drops events it already has (by job and `seq`), reports `resync`
 * frames, and backs off while attempts fail. It runs until closed ({@link Watch.done} then
 * rejects with an `AbortError`); it gives up, calling `onError`, only on answers that retrying
 * cannot fix (a 4xx, a non-SSE answer).
 */
export class AllJobsWatch extends Watch<AllJobsWatchItem, never> {
  private lastId: string | undefined;
  private readonly seen = new Map<string, number>();
  private readonly history: number;
  private readonly maxTrackedJobs: number;

  /** Use {@link MareClient.watchAll}. */
  constructor(
    private readonly http: WatchHttp,
    private readonly opts: AllJobsWatchOptions = {},
  ) {
    super(opts, opts.maxBuffered ?? 10_000);
    const { lastEventId, history = 0, maxTrackedJobs = 10_000 } = opts;
    this.lastId = lastEventId;
    this.history = history;
    this.maxTrackedJobs = maxTrackedJobs;
    this.start();
  }

  /** Id of the newest event received: where a reconnect resumes. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  protected async run(): Promise<undefined> {
    let failures = 0;
    let lastError: Error | undefined;
    for (;;) {
      if (this.stopped) return undefined;
      this.setStatus(failures > 0 || this.status !== 'connecting' ? 'reconnecting' : 'connecting', {
        failures,
        ...(lastError ? { error: lastError } : {}),
      });
      let retryAfterMs = 0;
      try {
        if (await this.attempt()) {
          failures = 0;
          lastError = undefined;
        } else {
          failures++;
        }
      } catch (err) {
        if (this.stopped) return undefined;
        ({ error: lastError, retryAfterMs } = this.retryableFailure(err));
        failures++;
      }
      if (this.stopped) return undefined;
      await this.waitBeforeRetry(failures, retryAfterMs, lastError);
    }
  }

  /** One SSE request, read to its end; true when it delivered anything. */
  private async attempt(): Promise<boolean> {
    // `history` only matters on a fresh start: with an id the server resumes after it instead.
    // The query parameter, not the header, so a cross-origin browser needs no preflight.
    const path =
      this.lastId !== undefined
        ? `/v1/triton/events?last_event_id=${encodeURIComponent(this.lastId)}`
        : `/v1/triton/events?history=${this.history}`;
    const connection = new AbortController();
    const stop = () => connection.abort();
    this.controller.signal.addEventListener('abort', stop, { once: true });
    try {
      const response = await this.http.openStream(path, connection.signal);
      if (!response.ok) throw await MareApiError.fromResponse(response);
      if (!isEventStream(response) || !response.body) {
        await response.body?.cancel().catch(() => undefined);
        // There is no polling substitute for the all-jobs feed.
        throw new MareApiError(
          'BAD_RESPONSE',
          'mare-api did not answer /v1/triton/events with an SSE stream',
          response.status,
        );
      }
      this.setStatus('open', { failures: 0 });
      let delivered = false;
      await readEventStream(
        response.body,
        {
          onEvent: (message) => {
            if (this.handleMessage(message)) delivered = true;
          },
          onRetry: (ms) => {
            this.retryMs = ms;
          },
        },
        { signal: connection.signal, idleTimeoutMs: this.idleTimeoutMs },
      );
      return delivered;
    } finally {
      this.controller.signal.removeEventListener('abort', stop);
    }
  }

  private handleMessage(message: SseMessage): boolean {
    if (this.stopped) return false;
    let value: unknown;
    try {
      value = JSON.parse(message.data);
    } catch {
      return false;
    }
    if (message.event === RESYNC_EVENT) {
      if (!isStreamResync(value)) return false;
      this.emit(value);
      this.callback(this.opts.onResync, value);
      return true;
    }
    if (message.event !== 'message') return false;
    const parsed = JobEvent.safeParse(value);
    if (!parsed.success) return false;
    const event = parsed.data;
    // Resume from wherever the stream got to, duplicates included: the id is a position.
    if (message.id && parseGlobalEventId(message.id)) this.lastId = message.id;
    const seen = this.seen.get(event.job_id) ?? 0;
    if (event.seq <= seen) return false;
    this.remember(event.job_id, event.seq);
    this.emit(event);
    this.callback(this.opts.onEvent, event);
    return true;
  }

  /** Records a job's highest seq, forgetting the longest-idle jobs beyond the limit. */
  private remember(jobId: string, seq: number): void {
    // Delete first so that the Map's insertion order is "least recently active first".
    this.seen.delete(jobId);
    this.seen.set(jobId, seq);
    while (this.seen.size > this.maxTrackedJobs) {
      const oldest = this.seen.keys().next();
      if (oldest.done) break;
      this.seen.delete(oldest.value);
    }
  }
}
