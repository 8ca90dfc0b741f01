import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../common/logger.js';
import type { HttpDurationHistogram } from '../common/metrics.js';
import { CORS_RESPONSE_HEADERS } from './cors-policy.js';
import type { MareMetrics } from './mare-metrics.js';
import type { ResultsCache } from './results-cache.js';

/** Exactly `/v1/triton/jobs/{uuid}`, no query: anything else goes through the router. */
const LOOKUP_PATH =
  /^\/v1\/triton\/jobs\/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;
const ROUTE = '/v1/triton/jobs/:job_id';

/** What the fast path answers from and reports to: the same cache, metrics and log as the route. */
export interface CachedLookupFastPathOptions {
  cache: ResultsCache;
  metrics: MareMetrics;
  httpDuration: HttpDurationHistogram;
  logger: Logger;
}

/**
 * Answers `GET /v1/triton/jobs/{id}` for cached jobs straight from the cache, before the
 * framework's routing, hooks and validation: the lookup every watcher of a finished job makes,
 * and one that must answer well within 50 ms. It answers exactly what the routed handler
 * would (same body, headers and metrics). A miss, or a cache that does not answer, is handed
 * to the router, which asks the cache again and then triton-api.
 */
export function createCachedLookupFastPath({
  cache,
  metrics,
  httpDuration,
  logger,
}: CachedLookupFastPathOptions) {
  // Label children resolved once, not per request.
  const hits = metrics.cacheLookups.labels('hit');
  const timing = httpDuration.labels('GET', ROUTE, '200');
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    if (req.method !== 'GET' || req.url === undefined || req.url.length !== 52) {
      next();
      return;
    }
    const id = LOOKUP_PATH.exec(req.url)?.[1];
    if (id === undefined) {
      next();
      return;
    }
    const started = performance.now();
    const jobId = id.toLowerCase();
    cache.getJson(jobId).then(
      (json) => {
        if (json === null) {
          next();
          return;
        }
        hits.inc();
        logger.debug({ job_id: jobId }, `Cache hit for job ${jobId}`);
        res.writeHead(200, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(json),
          'x-cache': 'hit',
          ...CORS_RESPONSE_HEADERS,
        });
        res.end(json);
        timing.observe((performance.now() - started) / 1000);
      },
      () => next(),
    );
  };
}
