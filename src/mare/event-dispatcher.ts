import { isTerminalEvent, streamIdAfter, type JobEvent } from '../contract/index.js';
import type { Logger } from '../common/logger.js';
import { RepeatedErrorLog } from '../common/repeated-error-log.js';
import { MAX_REPLAY, type EventHistory, type StoredEvent } from './event-history.js';
import type { JobSnapshots } from './job-snapshots.js';
import { LiveEvent } from './live-event.js';
import type { MareMetrics } from './mare-metrics.js';
import type { ResultsCache } from './results-cache.js';
import type { EventSubscriptions, SseHub } from './sse-hub.js';
import type { EventRoute, TritonEventSubscriber } from './triton-event-subscriber.js';

/** What the dispatcher hands events to, and reads back from. */
export interface EventDispatcherOptions {
  hub: SseHub;
  /** Where events come from: subscribed to on demand, for the hub's streams and the cacher. */
  subscriber: Pick<TritonEventSubscriber, 'watchJob' | 'unwatchJob' | 'watchAll' | 'unwatchAll'>;
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
 * Last seq dispatched per job, for one route (insertion-ordered, least recently active first,
 * bounded).
 */
class SeqMemory {
  private readonly lastSeq = new Map<string, number>();

  constructor(private readonly limit: number) {}

  get(jobId: string): number | undefined {
    return this.lastSeq.get(jobId);
  }

  /** Records `seq` as the job's last dispatched one; false when it is not above the last. */
  remember(jobId: string, seq: number): boolean {
    const last = this.lastSeq.get(jobId);
    if (last !== undefined) {
      if (seq <= last) return false;
      this.lastSeq.delete(jobId);
    } else if (this.lastSeq.size >= this.limit) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
    this.lastSeq.set(jobId, seq);
    return true;
  }

  forget(jobId: string): void {
    this.lastSeq.delete(jobId);
  }
}

/**
 * Where every job event lands in a gateway. Events come by two routes: a job's channel feeds
 * that job's watchers; the all-jobs channel feeds all-jobs watchers and, when this gateway is
 * the cacher, the results cache. The dispatcher is the one owner of "the last seq dispatched
 * per job" on each route, and drops repeats. After a route's subscriptions were lost and
 * restored, `reconcile(route)` replays from history what Pub/Sub dropped meanwhile: each
 * watched job from its own history (a job whose history is gone is resynced from triton-api),
 * the all-jobs route from the global history after the position of the last event received.
 */
export class EventDispatcher implements EventSubscriptions {
  private readonly o: Required<EventDispatcherOptions>;
  private readonly jobSeqs: SeqMemory;
  private readonly allSeqs: SeqMemory;
  /** Position in the global history of the newest all-jobs event received. */
  private position = '0-0';
  private readonly reconciling = new Map<EventRoute, Promise<void>>();
  /** Whether this gateway caches the results of the terminal events it receives. */
  private caching = false;
  /** Holders of the all-jobs route here (all-jobs streams, the cacher). */
  private allHolders = 0;
  /** The running start of the all-jobs route: its subscription, then its position. */
  private allStarting: Promise<void> | undefined;
  private readonly errors: RepeatedErrorLog;

  constructor({ rememberJobs = 100_000, ...options }: EventDispatcherOptions) {
    this.o = { rememberJobs, ...options };
    this.errors = new RepeatedErrorLog(options.logger);
    this.jobSeqs = new SeqMemory(rememberJobs);
    this.allSeqs = new SeqMemory(rememberJobs);
  }

  /** Watches a job's channel for its streams here; resolves once subscribed. */
  watchJob(jobId: string): Promise<void> {
    return this.o.subscriber.watchJob(jobId);
  }

  /** The job's stream here closed: the last one unsubscribes, and its seq is forgotten. */
  unwatchJob(jobId: string): void {
    this.o.subscriber.unwatchJob(jobId);
    if (!this.o.hub.watches(jobId)) this.jobSeqs.forget(jobId);
  }

  /**
   * Watches the all-jobs channel; resolves once subscribed and the current end of the global
   * history is marked as seen (a reconciliation of this route reads after it, never events
   * published while nobody here watched).
   */
  watchAll(): Promise<void> {
    this.allHolders++;
    const subscribed = this.o.subscriber.watchAll();
    if (this.allHolders === 1) {
      this.allStarting = subscribed.then(async () => {
        try {
          this.advance(await this.o.history.lastGlobalPosition());
        } catch (err) {
          this.o.logger.warn({ err }, 'Could not read the global history position');
        }
      });
    }
    return this.allStarting ?? subscribed;
  }

  /** Lets the all-jobs channel go (the last holder's call unsubscribes). */
  unwatchAll(): void {
    if (this.allHolders === 0) return;
    this.allHolders--;
    this.o.subscriber.unwatchAll();
  }

  /**
   * Caches the results of the terminal events in the global history from `windowMs` before its
   * newest event: what a cacher that just took over may have missed while nobody cached.
   */
  async cacheRecentResults(windowMs: number): Promise<number> {
    const { history, cache } = this.o;
    const newest = await history.lastGlobalPosition();
    const since = Math.max(0, Number(newest.split('-')[0]) - windowMs);
    const writes: Promise<void>[] = [];
    for (const { event } of await history.readGlobalAfterPosition(`${since}-0`)) {
      // Writing a result again is harmless: it is the same document.
      if (isTerminalEvent(event)) writes.push(cache.setFromEvent(event));
    }
    await Promise.all(writes);
    return writes.length;
  }

  /** Caches (or stops caching) the result of every terminal event on the all-jobs route. */
  setCaching(caching: boolean): void {
    this.caching = caching;
  }

  /** Handles one event from the subscription. */
  handle(event: JobEvent, json: string, route: EventRoute): void {
    const { metrics } = this.o;
    metrics.eventsReceived.inc({ event_type: event.event_type, channel: route });
    metrics.subscriberLag.observe(Math.max(0, (Date.now() - Date.parse(event.timestamp)) / 1000));
    this.dispatch(event, json, route);
  }

  /** Replays what a route's subscription may have missed. Concurrent calls share one run. */
  reconcile(route: EventRoute): Promise<void> {
    let running = this.reconciling.get(route);
    if (!running) {
      running = (route === 'job' ? this.reconcileJobs() : this.reconcileAll()).finally(() =>
        this.reconciling.delete(route),
      );
      this.reconciling.set(route, running);
    }
    return running;
  }

  /** Dispatches an event unless its seq is not above the last one dispatched on its route. */
  private dispatch(event: JobEvent, json: string, route: EventRoute): boolean {
    if (route === 'job') {
      if (!this.jobSeqs.remember(event.job_id, event.seq)) return false;
      this.o.hub.broadcastJob(new LiveEvent(event, json));
      return true;
    }
    if (event.stream_id !== undefined) this.advance(event.stream_id);
    if (!this.allSeqs.remember(event.job_id, event.seq)) return false;
    if (this.caching && isTerminalEvent(event)) {
      // Sent before the SSE frames: a client that looks the job up after its terminal event
      // finds the cache written (the cache connection runs commands in order).
      this.o.cache.setFromEvent(event).catch((err: unknown) => {
        this.errors.warn(err, 'Could not cache a job result', { job_id: event.job_id });
      });
    }
    this.o.hub.broadcastAll(new LiveEvent(event, json));
    return true;
  }

  private advance(position: string): void {
    if (streamIdAfter(position, this.position)) this.position = position;
  }

  private dispatchAll(events: readonly StoredEvent[], route: EventRoute): number {
    let dispatched = 0;
    for (const { event, json } of events) if (this.dispatch(event, json, route)) dispatched++;
    return dispatched;
  }

  private async reconcileAll(): Promise<void> {
    const { history, logger } = this.o;
    let replayed = 0;
    try {
      for (let read = 0; read < MAX_RECONCILE_READS; read++) {
        const missed = await history.readGlobalAfterPosition(this.position);
        replayed += this.dispatchAll(missed, 'all');
        if (missed.length < MAX_REPLAY) break;
      }
    } catch (err) {
      logger.warn({ err }, 'Could not read the global history to reconcile');
    }
    logger.info({ replayed }, 'Reconciled all-jobs events after the subscription was restored');
  }

  /** Watched jobs: their own history is authoritative; without one, triton-api is. */
  private async reconcileJobs(): Promise<void> {
    const { hub, history, snapshots, logger } = this.o;
    let replayed = 0;
    await Promise.all(
      hub.watchedJobIds().map(async (jobId) => {
        const lastSeq = this.jobSeqs.get(jobId) ?? 0;
        try {
          const { events, latest, draft, seq } = await history.readJob(jobId, lastSeq);
          replayed += this.dispatchAll(events, 'job');
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
