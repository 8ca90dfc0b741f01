import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKeys, Principal } from '../common/api-keys.js';
import type { Logger } from '../common/logger.js';
import type { HttpDurationHistogram } from '../common/metrics.js';
import { CorsPolicy } from './cors-policy.js';
import { visibleTo } from './job-lookup.js';
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
  /** Whose pages may read answers. @defaultValue any */
  cors?: CorsPolicy;
  /**
   * Auth on: the key checks. The fast path answers only a caller whose key this process verified
   * recently, and only with its own job; everything else (no key, an unknown or wrong one,
   * another tenant's job) goes to the router, which answers it as it answers any lookup.
   */
  keys?: ApiKeys;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The principal of a request's key as the key cache knows it, or undefined (let the router ask). */
function knownPrincipal(keys: ApiKeys, req: IncomingMessage): Principal | undefined {
  const header = req.headers.authorization;
  const key = header === undefined ? undefined : BEARER.exec(header)?.[1];
  return key === undefined ? undefined : (keys.peek(key) ?? undefined);
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
  cors = new CorsPolicy(),
  keys,
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
    let principal: Principal | undefined;
    if (keys) {
      principal = knownPrincipal(keys, req);
      if (!principal) {
        next();
        return;
      }
    }
    const started = performance.now();
    const jobId = id.toLowerCase();
    cache.getJson(jobId).then(
      (json) => {
        if (json === null || (principal && !visibleTo(json, principal))) {
          next();
          return;
        }
        hits.inc();
        logger.debug({ job_id: jobId }, `Cache hit for job ${jobId}`);
        res.writeHead(200, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(json),
          'x-cache': 'hit',
          ...cors.headersFor(req.headers.origin),
        });
        res.end(json);
        timing.observe((performance.now() - started) / 1000);
      },
      () => next(),
    );
  };
}
