import { isTerminalEvent, type JobEvent } from '../contract/index.js';
import type { Logger } from '../common/logger.js';
import type { EventHistory } from './event-history.js';
import type { JobLookup } from './job-lookup.js';
import type { MareMetrics } from './mare-metrics.js';
import type { ResultsCache } from './results-cache.js';
import { LiveEvent, type SseHub } from './sse-hub.js';

export interface EventDispatcherOptions {
  hub: SseHub;
  cache: ResultsCache;
  history: EventHistory;
  lookup: JobLookup;
  metrics: MareMetrics;
  logger: Logger;
  /** How far before the last message a reconciliation reads back, for clock skew. @defaultValue 30000 */
  reconcileMarginMs?: number;
}

/**
 * Where every job event lands in a gateway: it caches terminal results and fans events out to
 * SSE connections. After the subscription was lost and restored, `reconcile()` replays from
 * history what Pub/Sub dropped meanwhile (the hub drops repeats by seq), and jobs whose
 * history is gone are resynced from triton-api, so no watcher waits for an event that already
 * happened.
 */
export class EventDispatcher {
  private readonly o: Required<EventDispatcherOptions>;
  /** Local time of the last message from the subscription. */
  private lastMessageAt = Date.now();
  private reconciling: Promise<void> | undefined;

  constructor({ reconcileMarginMs = 30_000, ...options }: EventDispatcherOptions) {
    this.o = { reconcileMarginMs, ...options };
  }

  /** Handles one event from the subscription. */
  handle(event: JobEvent, json: string): void {
    this.lastMessageAt = Date.now();
    this.dispatch(event, json, true);
  }

  private dispatch(event: JobEvent, json: string, live: boolean): void {
    const { hub, cache, metrics, logger } = this.o;
    const published = Date.parse(event.timestamp);
    if (live) {
      metrics.eventsReceived.inc({ event_type: event.event_type });
      metrics.subscriberLag.observe(Math.max(0, (Date.now() - published) / 1000));
    }
    const liveEvent = new LiveEvent(event, json);
    if (isTerminalEvent(event)) {
      // Sent before the SSE frames: a client that looks the job up after its terminal event
      // finds the cache written (the cache connection runs commands in order).
      cache.setFromEvent(event).catch((err: Error) => {
        logger.warn({ job_id: event.job_id, err: err.message }, 'Could not cache a job result');
      });
    }
    if (hub.publish(liveEvent)) {
      metrics.sseDelivery.observe(Math.max(0, (Date.now() - published) / 1000));
    }
  }

  /** Replays what the subscription may have missed. Concurrent calls share one run. */
  reconcile(): Promise<void> {
    this.reconciling ??= this.doReconcile().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async doReconcile(): Promise<void> {
    const { hub, history, lookup, logger } = this.o;
    const since = this.lastMessageAt - this.o.reconcileMarginMs;
    let replayed = 0;
    try {
      for (const { event, json } of await history.readGlobalSince(since)) {
        this.dispatch(event, json, false);
        replayed++;
      }
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        'Could not read the global history to reconcile',
      );
    }
    // Watched jobs: their own history is authoritative; without one, triton-api is.
    await Promise.all(
      hub.watchedJobs().map(async ({ jobId, lastSeq }) => {
        try {
          const { events, latest } = await history.readJob(jobId, lastSeq);
          for (const { event, json } of events) this.dispatch(event, json, false);
          if (!latest) hub.resyncJob(jobId, await lookup.document(jobId), lastSeq);
        } catch (err) {
          logger.warn(
            { job_id: jobId, err: (err as Error).message },
            'Could not reconcile a watched job',
          );
        }
      }),
    );
    logger.info({ replayed }, 'Reconciled job events after the subscription was restored');
  }
}
