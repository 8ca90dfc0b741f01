import { isTerminalEvent, streamIdAfter, type JobEvent } from '../contract/index.js';
import type { Logger } from '../common/logger.js';
import { RepeatedErrorLog } from '../common/repeated-error-log.js';
import { MAX_REPLAY, type EventHistory } from './event-history.js';
import type { JobSnapshots } from './job-snapshots.js';
import { LiveEvent } from './live-event.js';
import type { MareMetrics } from './mare-metrics.js';
import type { ResultsCache } from './results-cache.js';
import type { SseHub } from './sse-hub.js';

/** What the dispatcher hands events to, and reads back from. */
export interface EventDispatcherOptions {
  hub: SseHub;
  cache: ResultsCache;
  history: EventHistory;
  snapshots: JobSnapshots;
  metrics: MareMetrics;
  logger: Logger;
  /** Jobs whose last dispatched seq is remembered, to drop repeats. @defaultValue 100000 */
  rememberJobs?: number;
}

/** Most global-history reads one reconciliation makes before it settles for resyncs. */
const MAX_RECONCILE_READS = 10;

/**
 * Where every job event lands in a gateway: it drops repeats (the one owner of "the last seq
 * dispatched per job"), caches terminal results and broadcasts events to SSE connections.
 * After the subscription was lost and restored, `reconcile()` replays from history what Pub/Sub
 * dropped meanwhile, reading the global stream from the position of the last event received,
 * and jobs whose history is gone are resynced from triton-api, so no watcher waits for an event
 * that already happened.
 */
export class EventDispatcher {
  private readonly o: Required<EventDispatcherOptions>;
  /** Last seq dispatched per job (insertion-ordered, least recently active first). */
  private readonly lastSeq = new Map<string, number>();
  /** Position in the global history of the newest event received. */
  private position = '0-0';
  private reconciling: Promise<void> | undefined;
  private readonly errors: RepeatedErrorLog;

  constructor({ rememberJobs = 100_000, ...options }: EventDispatcherOptions) {
    this.o = { rememberJobs, ...options };
    this.errors = new RepeatedErrorLog(options.logger);
  }

  /**
   * Marks the current end of the global history as seen: a reconciliation reads what comes
   * after it. Call once subscribed.
   */
  async start(): Promise<void> {
    this.advance(await this.o.history.lastGlobalPosition());
  }

  /** Handles one event from the subscription. */
  handle(event: JobEvent, json: string): void {
    const { metrics } = this.o;
    metrics.eventsReceived.inc({ event_type: event.event_type });
    metrics.subscriberLag.observe(Math.max(0, (Date.now() - Date.parse(event.timestamp)) / 1000));
    this.dispatch(event, json);
  }

  /** Replays what the subscription may have missed. Concurrent calls share one run. */
  reconcile(): Promise<void> {
    this.reconciling ??= this.doReconcile().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  /** Dispatches an event unless its seq is not above the last one dispatched for its job. */
  private dispatch(event: JobEvent, json: string): boolean {
    if (event.stream_id !== undefined) this.advance(event.stream_id);
    if (!this.remember(event.job_id, event.seq)) return false;
    if (isTerminalEvent(event)) {
      // Sent before the SSE frames: a client that looks the job up after its terminal event
      // finds the cache written (the cache connection runs commands in order).
      this.o.cache.setFromEvent(event).catch((err: unknown) => {
        this.errors.warn(err, 'Could not cache a job result', { job_id: event.job_id });
      });
    }
    this.o.hub.broadcast(new LiveEvent(event, json));
    return true;
  }

  /** Records `seq` as the job's last dispatched one; false when it is not above the last. */
  private remember(jobId: string, seq: number): boolean {
    const last = this.lastSeq.get(jobId);
    if (last !== undefined) {
      if (seq <= last) return false;
      this.lastSeq.delete(jobId);
    } else if (this.lastSeq.size >= this.o.rememberJobs) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
    this.lastSeq.set(jobId, seq);
    return true;
  }

  private advance(position: string): void {
    if (streamIdAfter(position, this.position)) this.position = position;
  }

  private async doReconcile(): Promise<void> {
    const { hub, history, snapshots, logger } = this.o;
    let replayed = 0;
    try {
      for (let read = 0; read < MAX_RECONCILE_READS; read++) {
        const missed = await history.readGlobalAfterPosition(this.position);
        for (const { event, json } of missed) if (this.dispatch(event, json)) replayed++;
        if (missed.length < MAX_REPLAY) break;
      }
    } catch (err) {
      logger.warn({ err }, 'Could not read the global history to reconcile');
    }
    // Watched jobs: their own history is authoritative; without one, triton-api is.
    await Promise.all(
      hub.watchedJobIds().map(async (jobId) => {
        const lastSeq = this.lastSeq.get(jobId) ?? 0;
        try {
          const { events, latest, draft, seq } = await history.readJob(jobId, lastSeq);
          for (const { event, json } of events) if (this.dispatch(event, json)) replayed++;
          if (!latest) {
            const state = await snapshots.state(jobId, draft);
            hub.resyncJob(jobId, state, Math.max(lastSeq, seq));
          }
        } catch (err) {
          logger.warn({ job_id: jobId, err }, 'Could not reconcile a watched job');
        }
      }),
    );
    logger.info({ replayed }, 'Reconciled job events after the subscription was restored');
  }
}
