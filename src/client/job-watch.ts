import {
  JobEvent,
  JobSnapshot,
  TERMINAL_STATUSES,
  type JobStatusDocument,
} from '../contract/index.js';
import { backoffDelay, sleep } from './backoff.js';
import { JobFailedError } from './job-failed-error.js';
import { MareApiError } from './mare-api-error.js';
import { isEventStream, readEventStream, type SseMessage } from './read-event-stream.js';
import { applyJobEvent, type JobWatchEvent } from './status-document-from-events.js';
import { TemplateTexts, type TemplateText } from './template-texts.js';
import { asMareApiError, Watch, type WatchHttp, type WatchOptions } from './watch.js';
import type { StreamTokenSource } from './mare-client.js';

/** How a job watch gets its events. */
export type JobWatchTransport =
  /** SSE, falling back to polling when SSE is unavailable. */
  | 'auto'
  /** SSE only: a gateway that does not answer with an SSE stream is an error. */
  | 'sse'
  /** Poll the status document only (e.g. behind a proxy known to break streaming). */
  | 'poll';

/** Options of {@link MareClient.watchJob}. */
export interface JobWatchOptions extends WatchOptions {
  /** Every event (and snapshot), once each, in `seq` order. */
  onEvent?: (event: JobWatchEvent) => void;
  /** The job's progress (0–100) whenever it changes, with the event that changed it. */
  onProgress?: (progress: number, event: JobWatchEvent) => void;
  /**
   * A template's text changed: more of it was written (`job:delta`), it was stored, or a
   * snapshot replaced it. `template.text` is the whole text so far.
   */
  onText?: (template: TemplateText, event: JobWatchEvent) => void;
  /** The job completed: its final status document. */
  onComplete?: (result: JobStatusDocument) => void;
  /** The job was cancelled: its final status document (the templates it kept are listed). */
  onCancel?: (result: JobStatusDocument) => void;
  /**
   * The job failed (a {@link JobFailedError} with its final document), or the watch cannot go
   * on (a {@link MareApiError}: unknown job, malformed id, a gateway that is not mare-api).
   */
  onError?: (error: Error) => void;
  /**
   * Resume after this `seq` (the last event the caller already has), as `Last-Event-ID` does.
   * @defaultValue 0 (from the start)
   */
  lastEventId?: number;
  /** @defaultValue 'auto' */
  transport?: JobWatchTransport;
  /**
   * The stream token to open the job's stream with (the `stream_token` of its submission, say),
   * or where to get one for each connection. Once a given token expires, a reconnection takes
   * the client's `streamToken` source, if it has one, or fails with `UNAUTHORIZED`.
   */
  streamToken?: string | StreamTokenSource;
  /** Interval between status lookups while polling. @defaultValue 2000 */
  pollIntervalMs?: number;
  /**
   * Consecutive failed SSE attempts (network errors, 5xx, streams that drop before delivering
   * anything) after which an `auto` watch polls instead. It tries SSE again after `maxRetryMs`
   * of polling. @defaultValue 3
   */
  sseFailuresBeforePolling?: number;
}

/** What a job watch needs from its client. */
export interface JobWatchHttp extends WatchHttp {
  /** `GET /v1/triton/jobs/{id}`: the status document, cache first. */
  getJob(jobId: string, signal: AbortSignal): Promise<JobStatusDocument>;
}

/** How one SSE attempt ended. */
type AttemptOutcome =
  /** The stream opened; `worked` when it delivered events or stayed up a while. */
  | { kind: 'dropped'; worked: boolean }
  /** The answer was not SSE: streaming is not available on this path. */
  | { kind: 'not-sse' }
  /** 204: the job is over and nothing is left to send. */
  | { kind: 'no-content' };

/**
 * A connection that stayed up this long worked, even if the job sent nothing meanwhile: it
 * outlived mare-api's heartbeat interval, so its end is an ordinary drop, not a failing gateway.
 */
const STABLE_CONNECTION_MS = 15_000;

/**
 * Follows one job to its end: an async iterator of its events (`for await`) and a set of
 * callbacks, over one SSE connection that it re-opens as often as needed.
 *
 * - Resumes after the last `seq` it has and drops any event it already has, so each `seq`
 *   arrives exactly once whatever the connection does.
 * - A `job:snapshot` (history the server could no longer replay) replaces the job's state.
 * - Keeps each template's text as it is written (`job:delta`), in {@link JobWatch.templates}.
 * - Ends after `job:completed`, `job:failed` or `job:cancelled`, or when the server answers 204
 *   (nothing left).
 * - Waits between attempts as the server's `retry:` says, backing off while attempts fail.
 * - When SSE is unavailable (a non-SSE answer, or repeated failures) it polls
 *   `GET /v1/triton/jobs/{id}` (cache-first) instead and yields changes as snapshots.
 *
 * {@link Watch.done} resolves with the final status document, whether the job completed,
 * failed or was cancelled; a failed job is also reported to `onError` as a {@link JobFailedError}. A watch that
 * cannot go on (unknown job, malformed id) rejects `done`, throws from the iterator and calls
 * `onError` with a {@link MareApiError}.
 */
export class JobWatch extends Watch<JobWatchEvent, JobStatusDocument> {
  private lastSeq: number;
  private doc: JobStatusDocument | undefined;
  private lastProgress: number | null | undefined;
  private readonly texts = new TemplateTexts();
  private readonly transport: JobWatchTransport;
  private readonly pollIntervalMs: number;
  private readonly sseFailuresBeforePolling: number;
  private readonly path: string;
  /** Consecutive failed status lookups while polling. */
  private pollFailures = 0;

  /** Use {@link MareClient.watchJob}. */
  constructor(
    readonly jobId: string,
    private readonly http: JobWatchHttp,
    private readonly opts: JobWatchOptions = {},
  ) {
    super(opts);
    const {
      lastEventId = 0,
      transport = 'auto',
      pollIntervalMs = 2000,
      sseFailuresBeforePolling = 3,
    } = opts;
    this.lastSeq = lastEventId;
    this.transport = transport;
    this.pollIntervalMs = pollIntervalMs;
    this.sseFailuresBeforePolling = sseFailuresBeforePolling;
    this.path = `/v1/triton/jobs/${encodeURIComponent(jobId)}/subscribe`;
    this.start();
  }

  /** The job's status document as the events so far describe it (undefined before the first). */
  get current(): JobStatusDocument | undefined {
    return this.doc;
  }

  /** The templates' text so far, in order: each grows as it is written, then is stored. */
  get templates(): TemplateText[] {
    return this.texts.list;
  }

  /** Highest `seq` received: what a later watch would pass as `lastEventId`. */
  get lastEventId(): number {
    return this.lastSeq;
  }

  protected async run(): Promise<JobStatusDocument | undefined> {
    let polling = this.transport === 'poll';
    /** When a watch that fell back to polling tries SSE again (never, for a non-SSE answer). */
    let retrySseAt = Number.POSITIVE_INFINITY;
    let failures = 0;
    let lastError: Error | undefined;

    for (;;) {
      if (this.stopped) return undefined;
      const terminal = this.terminalDoc();
      if (terminal) return this.settleJob(terminal);

      if (polling) {
        const delayMs = await this.pollOnce();
        const finished = this.terminalDoc();
        if (finished) return this.settleJob(finished);
        if (Date.now() >= retrySseAt) {
          polling = false;
          failures = 0;
          continue;
        }
        await sleep(delayMs, this.controller.signal);
        continue;
      }

      this.setStatus(failures > 0 || this.status !== 'connecting' ? 'reconnecting' : 'connecting', {
        failures,
        ...(lastError ? { error: lastError } : {}),
      });
      let retryAfterMs = 0;
      try {
        const outcome = await this.attempt();
        // 204 brought the job's end (the loop's top settles it); a 204 that did not would
        // contradict the contract: wait and ask again rather than spin.
        if (outcome.kind === 'no-content') {
          if (this.terminalDoc()) continue;
          failures++;
        } else if (outcome.kind === 'not-sse') {
          if (this.transport === 'sse') {
            throw new MareApiError(
              'BAD_RESPONSE',
              'mare-api did not answer with an SSE stream',
              200,
            );
          }
          polling = true;
          continue;
        } else if (outcome.worked) {
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
      if (this.terminalDoc()) continue;
      if (this.transport === 'auto' && failures >= this.sseFailuresBeforePolling) {
        polling = true;
        retrySseAt = Date.now() + this.maxRetryMs;
        continue;
      }
      await this.waitBeforeRetry(failures, retryAfterMs, lastError);
    }
  }

  /** One SSE request, read until it ends or brings the terminal event. */
  private async attempt(): Promise<AttemptOutcome> {
    // The query parameter rather than the `Last-Event-ID` header: in a browser a custom header
    // makes every cross-origin connection pay for a CORS preflight first.
    const path = this.lastSeq > 0 ? `${this.path}?last_event_id=${this.lastSeq}` : this.path;
    const connection = new AbortController();
    const stop = () => connection.abort();
    this.controller.signal.addEventListener('abort', stop, { once: true });
    try {
      const response = await this.http.openStream(path, connection.signal);
      if (response.status === 204) {
        await response.body?.cancel().catch(() => undefined);
        await this.lookUpEnd();
        return { kind: 'no-content' };
      }
      if (!response.ok) throw await MareApiError.fromResponse(response);
      if (!isEventStream(response) || !response.body) {
        await response.body?.cancel().catch(() => undefined);
        return { kind: 'not-sse' };
      }
      this.setStatus('open', { failures: 0 });
      const openedAt = Date.now();
      let delivered = false;
      await readEventStream(
        response.body,
        {
          onEvent: (message) => {
            if (this.handleMessage(message)) delivered = true;
            // The terminal event is the end: stop reading rather than wait for the close.
            if (this.terminalDoc()) connection.abort();
          },
          onRetry: (ms) => {
            this.retryMs = ms;
          },
        },
        { signal: connection.signal, idleTimeoutMs: this.idleTimeoutMs },
      );
      return {
        kind: 'dropped',
        worked: delivered || Date.now() - openedAt >= STABLE_CONNECTION_MS,
      };
    } finally {
      this.controller.signal.removeEventListener('abort', stop);
    }
  }

  /** Handles one SSE message; true when it was news (not a duplicate, not unreadable). */
  private handleMessage(message: SseMessage): boolean {
    if (this.stopped || message.event !== 'message') return false;
    let value: unknown;
    try {
      value = JSON.parse(message.data);
    } catch {
      return false;
    }
    const isSnapshot =
      typeof value === 'object' &&
      value !== null &&
      (value as { event_type?: unknown }).event_type === 'job:snapshot';
    const parsed = isSnapshot ? JobSnapshot.safeParse(value) : JobEvent.safeParse(value);
    // Not the contract's event: skip it rather than end a watch over one bad message.
    if (!parsed.success) return false;
    const event = parsed.data;
    if (event.job_id.toLowerCase() !== this.jobId.toLowerCase()) return false;
    if (event.event_type === 'job:snapshot') {
      // A snapshot states the whole job as of its seq: later events continue from there.
      this.lastSeq = Math.max(this.lastSeq, event.seq);
    } else {
      if (event.seq <= this.lastSeq) return false;
      this.lastSeq = event.seq;
    }
    this.deliver(event);
    return true;
  }

  /** Applies, queues and reports one event. */
  private deliver(event: JobWatchEvent): void {
    this.doc = applyJobEvent(this.doc, event);
    const changedTexts = this.texts.apply(event);
    this.emit(event);
    this.callback(this.opts.onEvent, event);
    for (const index of changedTexts) {
      const template = this.texts.get(index);
      if (template) this.callback(this.opts.onText, template, event);
    }
    const progress = this.doc.progress;
    if (progress !== null && progress !== this.lastProgress) {
      this.callback(this.opts.onProgress, progress, event);
    }
    this.lastProgress = progress;
  }

  private terminalDoc(): JobStatusDocument | undefined {
    return this.doc && TERMINAL_STATUSES.has(this.doc.status) ? this.doc : undefined;
  }

  /** Reports the job's end and hands back its document as the watch's result. */
  private settleJob(doc: JobStatusDocument): JobStatusDocument {
    if (doc.status === 'completed') this.callback(this.opts.onComplete, doc);
    else if (doc.status === 'cancelled') this.callback(this.opts.onCancel, doc);
    else this.callback(this.opts.onError, new JobFailedError(doc));
    return doc;
  }

  /** A 204 without the terminal event in hand (resumed at the very end): look the end up. */
  private async lookUpEnd(): Promise<void> {
    if (this.terminalDoc()) return;
    const doc = await this.http.getJob(this.jobId, this.controller.signal);
    if (!this.stopped) this.deliver(this.snapshotOf(doc));
  }

  /**
   * One cache-first status lookup; reports what changed. Returns how long to wait before the
   * next one; throws only errors that retrying cannot fix.
   */
  private async pollOnce(): Promise<number> {
    this.setStatus('polling', { failures: this.pollFailures });
    try {
      const doc = await this.http.getJob(this.jobId, this.controller.signal);
      if (!this.stopped && (!this.doc || changed(this.doc, doc))) {
        this.deliver(this.snapshotOf(doc));
      }
      this.pollFailures = 0;
      return this.pollIntervalMs;
    } catch (err) {
      if (this.stopped) return 0;
      const error = asMareApiError(err);
      if (!error.retryable) throw error;
      this.pollFailures++;
      return Math.max(
        (error.retryAfterSeconds ?? 0) * 1000,
        backoffDelay(this.pollFailures, this.pollIntervalMs, this.maxRetryMs),
      );
    }
  }

  private snapshotOf(doc: JobStatusDocument): JobSnapshot {
    // A lookup says nothing about seq: the snapshot stands as of the last event we have.
    return {
      event_type: 'job:snapshot',
      timestamp: new Date().toISOString(),
      ...doc,
      seq: this.lastSeq,
    };
  }
}

/** True when a polled document says something the watch has not reported yet. */
function changed(before: JobStatusDocument, after: JobStatusDocument): boolean {
  return (
    before.status !== after.status ||
    before.progress !== after.progress ||
    before.template_count !== after.template_count
  );
}
