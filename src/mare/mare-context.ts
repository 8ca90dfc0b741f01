import type { Logger } from '../common/logger.js';
import type { EventHistory } from './event-history.js';
import type { JobLookup } from './job-lookup.js';
import type { JobSnapshots } from './job-snapshots.js';
import type { MareMetrics } from './mare-metrics.js';
import type { SseHub } from './sse-hub.js';
import type { CorsPolicy } from './cors-policy.js';
import type { SseStreamOptions } from './sse-stream.js';
import type { StreamTokens } from './stream-tokens.js';
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
  /** Issues stream tokens; present exactly when auth is on. */
  streamTokens?: StreamTokens | undefined;
  /** Whose pages may read answers: SSE streams take their CORS headers from it. @defaultValue any */
  cors?: CorsPolicy;
  config: {
    /** Open SSE connections beyond which new ones are refused (503). */
    sseMaxConnections: number;
    /** Reconnection delay SSE clients are told (`retry:`). */
    sseRetryMs: number;
    /** Per-connection buffering bounds for SSE streams. */
    sseStream: SseStreamOptions;
  };
}
