import { backoffDelay, sleep } from './backoff.js';
import { MareApiError } from './mare-api-error.js';
import { EventQueue } from './event-queue.js';

/**
 * Where a watch's connection stands:
 * - `connecting`: the first request is on its way;
 * - `open`: an SSE stream is delivering events;
 * - `reconnecting`: the stream dropped (or could not open) and the watch is waiting or retrying;
 * - `polling`: SSE is unavailable, so the watch polls the status document instead;
 * - `closed`: the watch has ended (finished, failed or closed) and will do nothing more.
 */
export type WatchStatus = 'connecting' | 'open' | 'reconnecting' | 'polling' | 'closed';

/** What accompanies a status change. */
export interface WatchStatusDetail {
  /** Consecutive failed attempts so far (0 once a connection works). */
  failures: number;
  /** How long the watch waits before the next attempt, when it is waiting. */
  delayMs?: number;
  /** Why the previous connection ended or failed, when it did. */
  error?: Error;
}

/** Options every watch accepts. */
export interface WatchOptions {
  /** Stops the watch, like {@link Watch.close}. */
  signal?: AbortSignal;
  /** Called whenever {@link Watch.status} changes. */
  onStatus?: (status: WatchStatus, detail: WatchStatusDetail) => void;
  /** Called once when the watch cannot go on (see each watch for what that means). */
  onError?: (error: Error) => void;
  /** First reconnection delay, until the server's `retry:` says otherwise. @defaultValue 1000 */
  retryMs?: number;
  /** Longest delay between reconnection attempts. @defaultValue 30000 */
  maxRetryMs?: number;
  /** A stream silent for this long (heartbeats included) is treated as dropped. @defaultValue 45000 */
  idleTimeoutMs?: number;
}

/** The HTTP every watch needs from its client: raw streaming requests. */
export interface WatchHttp {
  /** GET `path` as an SSE request; resolves with the response, whatever its status. */
  openStream(path: string, signal: AbortSignal): Promise<Response>;
}

/** Turns anything thrown by fetch or a handler into a {@link MareApiError}. */
export function asMareApiError(err: unknown): MareApiError {
  if (err instanceof MareApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MareApiError(
    'NETWORK_ERROR',
    `mare-api could not be reached: ${message}`,
    0,
    undefined,
    {
      cause: err,
    },
  );
}

/**
 * What both watches share: the event queue behind `for await`, the connection status, callbacks
 * that cannot break the watch, and one way to stop (`close()`, the caller's signal, the end).
 * Subclasses implement {@link Watch.run}, which resolves with the result or throws the error
 * that ends the watch.
 */
export abstract class Watch<T, R> implements AsyncIterable<T> {
  /** Resolves with the watch's result; rejects with the error that ended it, or on close. */
  readonly done: Promise<R>;
  /** Aborted when the watch ends for any reason: every request and timer listens to it. */
  protected readonly controller = new AbortController();
  private readonly queue: EventQueue<T>;
  private currentStatus: WatchStatus = 'connecting';
  private ended = false;
  private resolveDone!: (value: R) => void;
  private rejectDone!: (err: Error) => void;
  private readonly externalSignal: AbortSignal | undefined;
  private readonly onExternalAbort = () => this.close();
  /** First delay of the reconnection backoff; the server's `retry:` replaces it. */
  protected retryMs: number;
  protected readonly maxRetryMs: number;
  protected readonly idleTimeoutMs: number;

  protected constructor(
    private readonly options: WatchOptions,
    queueLimit?: number,
  ) {
    this.queue = new EventQueue<T>(() => this.close(), queueLimit);
    this.done = new Promise<R>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Callers that use only callbacks or only the iterator never look at `done`: a rejection
    // nobody awaits must not surface as an unhandled one.
    this.done.catch(() => undefined);
    this.externalSignal = options.signal;
    this.retryMs = options.retryMs ?? 1000;
    this.maxRetryMs = options.maxRetryMs ?? 30_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  }

  /** The connection's state now; changes are reported to `onStatus`. */
  get status(): WatchStatus {
    return this.currentStatus;
  }

  /** True once the watch has ended: finished, failed or closed. */
  get closed(): boolean {
    return this.ended;
  }

  /**
   * Stops the watch: aborts any request, ends the iterator (dropping events not yet read), and
   * rejects {@link Watch.done} with an `AbortError` if the watch had not finished. Safe to call
   * more than once.
   */
  close(): void {
    if (this.ended) return;
    this.settle();
    // Whoever closes a watch wants nothing more from it, buffered events included.
    this.queue.end(true);
    this.rejectDone(new DOMException('The watch was closed', 'AbortError'));
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** Starts {@link Watch.run}; subclasses call it last in their constructor. */
  protected start(): void {
    if (this.externalSignal?.aborted) {
      this.close();
      return;
    }
    this.externalSignal?.addEventListener('abort', this.onExternalAbort, { once: true });
    this.run().then(
      (result) => {
        if (result === undefined) this.close();
        else this.finish(result);
      },
      (err: unknown) => {
        if (this.ended) return;
        this.fail(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  /**
   * Follows the stream until the watch's result is known; throws what ends it otherwise.
   * Resolves with undefined once the watch was closed (nothing left to report).
   */
  protected abstract run(): Promise<R | undefined>;

  /** Hands one item to the iterator (callbacks are the subclass's to call). */
  protected emit(item: T): void {
    if (!this.ended) this.queue.push(item);
  }

  /**
   * What a failed attempt leaves to retry with: the error, and how long the server asked to
   * wait (Retry-After). An error that retrying cannot fix is thrown instead.
   */
  protected retryableFailure(err: unknown): { error: MareApiError; retryAfterMs: number } {
    const error = asMareApiError(err);
    if (!error.retryable) throw error;
    return { error, retryAfterMs: (error.retryAfterSeconds ?? 0) * 1000 };
  }

  /**
   * Waits before the next attempt: backing off with the failures so far, at least as long as
   * the server asked, and says so through `onStatus`.
   */
  protected async waitBeforeRetry(
    failures: number,
    retryAfterMs: number,
    lastError: Error | undefined,
  ): Promise<void> {
    const delayMs = Math.max(retryAfterMs, backoffDelay(failures, this.retryMs, this.maxRetryMs));
    this.setStatus('reconnecting', {
      failures,
      delayMs,
      ...(lastError ? { error: lastError } : {}),
    });
    await sleep(delayMs, this.controller.signal);
  }

  /** True once the watch ended or was closed: loops check it after every await. */
  protected get stopped(): boolean {
    return this.ended || this.controller.signal.aborted;
  }

  protected setStatus(status: WatchStatus, detail: WatchStatusDetail): void {
    // A loop that was mid-request when the watch ended must not revive its status.
    if (this.ended || status === this.currentStatus) return;
    this.currentStatus = status;
    this.callback(this.options.onStatus, status, detail);
  }

  /**
   * Calls a user callback. One that throws must not tear down the watch, nor be swallowed:
   * its error is rethrown on its own, as an event listener's would be.
   */
  protected callback<A extends unknown[]>(
    fn: ((...args: A) => void) | undefined,
    ...args: A
  ): void {
    if (!fn) return;
    try {
      fn(...args);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  private finish(result: R): void {
    if (this.ended) return;
    this.settle();
    this.queue.end();
    this.resolveDone(result);
  }

  /** Ends the watch with an error: `onError`, a throwing iterator, a rejected `done`. */
  protected fail(error: Error): void {
    if (this.ended) return;
    this.settle();
    this.callback(this.options.onError, error);
    this.queue.fail(error);
    this.rejectDone(error);
  }

  private settle(): void {
    this.ended = true;
    this.externalSignal?.removeEventListener('abort', this.onExternalAbort);
    this.controller.abort();
    const detail: WatchStatusDetail = { failures: 0 };
    if (this.currentStatus !== 'closed') {
      this.currentStatus = 'closed';
      this.callback(this.options.onStatus, 'closed', detail);
    }
  }
}
