import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobEventType } from '../contract/index.js';
import { LATENCY_BUCKETS } from '../common/metrics.js';

/** How one request to a language model ended. */
export type LlmRequestOutcome =
  | 'ok'
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'client_error'
  | 'malformed'
  | 'disconnected'
  | 'aborted';

/**
 * triton's Prometheus metrics: publishing (under the names the original system's dashboards
 * and alerts query), jobs, the queue, and the language model's requests and tokens.
 */
export class TritonMetrics {
  readonly publishDuration: Histogram<'event_type'>;
  readonly eventsPublished: Counter<'event_type'>;
  readonly jobsFinished: Counter<'outcome'>;
  readonly jobDuration: Histogram<'outcome'>;
  readonly queueDepth: Gauge<'state'>;
  readonly llmRequests: Counter<'outcome'>;
  readonly llmRequestDuration: Histogram<'outcome'>;
  readonly llmTokens: Counter<'kind'>;

  constructor(
    readonly registry: Registry,
    /** Reads the queue's job counts when Prometheus scrapes. */
    queueCounts?: () => Promise<Record<string, number>>,
  ) {
    this.publishDuration = new Histogram({
      name: 'triton_event_publish_duration_seconds',
      help: 'Time to publish one job event (history append and Pub/Sub, atomically)',
      labelNames: ['event_type'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.eventsPublished = new Counter({
      name: 'triton_events_published_total',
      help: 'Job events published, by event type',
      labelNames: ['event_type'],
      registers: [registry],
    });
    this.jobsFinished = new Counter({
      name: 'triton_jobs_finished_total',
      help: 'Jobs that reached a terminal state, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.jobDuration = new Histogram({
      name: 'triton_job_duration_seconds',
      help: 'Generation time of finished jobs, by outcome',
      labelNames: ['outcome'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    });
    this.queueDepth = new Gauge({
      name: 'triton_queue_jobs',
      help: 'Jobs in the generation queue, by state',
      labelNames: ['state'],
      registers: [registry],
      collect: queueCounts
        ? async () => {
            const counts = await queueCounts();
            for (const [state, n] of Object.entries(counts)) this.queueDepth.set({ state }, n);
          }
        : undefined,
    });
    this.llmRequests = new Counter({
      name: 'triton_llm_requests_total',
      help: 'Requests to the language model, retries included, by outcome',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.llmRequestDuration = new Histogram({
      name: 'triton_llm_request_duration_seconds',
      help: 'Time from sending a request to the language model to the end of its answer, by outcome',
      labelNames: ['outcome'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
      registers: [registry],
    });
    this.llmTokens = new Counter({
      name: 'triton_llm_tokens_total',
      help: 'Tokens the language model reported, by kind (prompt, completion)',
      labelNames: ['kind'],
      registers: [registry],
    });
  }

  /** Counts one published event and how long its publish call took. */
  observePublish(type: JobEventType, seconds: number): void {
    this.publishDuration.observe({ event_type: type }, seconds);
    this.eventsPublished.inc({ event_type: type });
  }

  /** Counts one finished job and how long it ran. */
  observeJob(outcome: 'completed' | 'failed' | 'cancelled', seconds: number): void {
    this.jobsFinished.inc({ outcome });
    this.jobDuration.observe({ outcome }, seconds);
  }

  /** Counts one request to the language model and how long it took. */
  observeLlmRequest(outcome: LlmRequestOutcome, seconds: number): void {
    this.llmRequests.inc({ outcome });
    this.llmRequestDuration.observe({ outcome }, seconds);
  }

  /** Adds a request's prompt and completion tokens. */
  countLlmTokens(usage: { prompt_tokens: number; completion_tokens: number }): void {
    if (usage.prompt_tokens > 0) this.llmTokens.inc({ kind: 'prompt' }, usage.prompt_tokens);
    if (usage.completion_tokens > 0) {
      this.llmTokens.inc({ kind: 'completion' }, usage.completion_tokens);
    }
  }
}
