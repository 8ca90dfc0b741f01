import type { Logger } from '../common/logger.js';
import type { EventHistory } from './event-history.js';
import type { JobLookup } from './job-lookup.js';
import type { MareMetrics } from './mare-metrics.js';
import type { SseHub, SseStreamOptions } from './sse-hub.js';
import type { TritonClient } from './triton-client.js';

/** What mare-api's routes share: built once per process by `startMare`. */
export interface MareContext {
  hub: SseHub;
  history: EventHistory;
  lookup: JobLookup;
  triton: TritonClient;
  metrics: MareMetrics;
  logger: Logger;
  config: {
    sseMaxConnections: number;
    sseRetryMs: number;
    /** Per-connection buffering bounds for SSE streams. */
    sseStream: SseStreamOptions;
  };
}
