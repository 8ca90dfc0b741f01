import type { Logger } from '../common/logger.js';
import type { EventHistory } from './event-history.js';
import type { JobLookup } from './job-lookup.js';
import type { JobSnapshots } from './job-snapshots.js';
import type { MareMetrics } from './mare-metrics.js';
import type { SseHub } from './sse-hub.js';
import type { SseStreamOptions } from './sse-stream.js';
import type { TritonClient } from './triton-client.js';

/** What mare-api's routes share: built once per process by `startMare`. */
export interface MareContext {
  hub: SseHub;
  history: EventHistory;
  lookup: JobLookup;
  snapshots: JobSnapshots;
  triton: TritonClient;
  metrics: MareMetrics;
  logger: Logger;
  config: {
    /** Open SSE connections beyond which new ones are refused (503). */
    sseMaxConnections: number;
    /** Reconnection delay SSE clients are told (`retry:`). */
    sseRetryMs: number;
    /** Per-connection buffering bounds for SSE streams. */
    sseStream: SseStreamOptions;
  };
}
