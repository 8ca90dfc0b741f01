/**
 * mare-api's cross-origin policy, in one place: the CORS plugin applies it to routed answers,
 * and answers written outside the router (the cached-lookup fast path, SSE streams) carry
 * {@link CORS_RESPONSE_HEADERS}.
 */

/** Any origin may read mare-api's answers: a page opened from a file or another site watches jobs too. */
export const CORS_ORIGIN = '*';

/** Response headers a cross-origin page may read. */
export const CORS_EXPOSED_HEADERS: readonly string[] = ['x-cache', 'retry-after'];

/** The CORS headers of an answer the CORS plugin does not see. */
export const CORS_RESPONSE_HEADERS = Object.freeze({
  'access-control-allow-origin': CORS_ORIGIN,
  'access-control-expose-headers': CORS_EXPOSED_HEADERS.join(', '),
});
