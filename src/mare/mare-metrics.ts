import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../common/metrics.js';

/**
 * mare-api's Prometheus metrics: subscriber lag (under the name the original system's dashboards
 * query), events received, cache lookups, SSE connections and delivery.
 */
export class MareMetrics {
  readonly subscriberLag: Histogram;
  readonly eventsReceived: Counter<'event_type' | 'channel'>;
  readonly eventsInvalid: Counter;
  readonly cacheLookups: Counter<'result'>;
  readonly sseConnections: Gauge<'stream'>;
  readonly sseDelivery: Histogram;
  readonly sseRejected: Counter<'reason'>;
  readonly subscribedJobChannels: Gauge;
  readonly resultsCacher: Gauge;

  constructor(readonly registry: Registry) {
    this.subscriberLag = new Histogram({
      name: 'triton_event_subscriber_lag_seconds',
      help: "Time from an event's timestamp to its arrival at this gateway's subscriber",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.eventsReceived = new Counter({
      name: 'mare_events_received_total',
      help: "Job events this gateway received from Redis, by event type and channel (job: a watched job's channel; all: triton:jobs:all)",
      labelNames: ['event_type', 'channel'],
      registers: [registry],
    });
    this.eventsInvalid = new Counter({
      name: 'mare_events_invalid_total',
      help: 'Messages on the events channel that were not valid job events (ignored)',
      registers: [registry],
    });
    this.cacheLookups = new Counter({
      name: 'mare_cache_lookups_total',
      help: 'Job status lookups, by result (hit: answered from the cache)',
      labelNames: ['result'],
      registers: [registry],
    });
    this.sseConnections = new Gauge({
      name: 'mare_sse_connections',
      help: 'Open SSE connections, by stream (job or global)',
      labelNames: ['stream'],
      registers: [registry],
    });
    this.sseDelivery = new Histogram({
      name: 'mare_sse_delivery_seconds',
      help: "Time from an event's timestamp until this gateway handed it to the sockets of its watchers (end of the event-loop turn it was written in)",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.subscribedJobChannels = new Gauge({
      name: 'mare_subscribed_job_channels',
      help: 'Job channels this gateway subscribes to (jobs its clients watch)',
      registers: [registry],
    });
    this.resultsCacher = new Gauge({
      name: 'mare_results_cacher',
      help: 'Whether this gateway holds the lease of the one that caches every job result (1) or not (0)',
      registers: [registry],
    });
    this.sseRejected = new Counter({
      name: 'mare_sse_rejected_total',
      help: 'SSE connections refused or cut, by reason',
      labelNames: ['reason'],
      registers: [registry],
    });
  }
}
