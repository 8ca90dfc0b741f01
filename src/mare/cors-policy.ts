/**
 * mare-api's cross-origin policy, in one place: the CORS plugin applies it to routed answers,
 * and answers written outside the router (the cached-lookup fast path, SSE streams) take their
 * headers from {@link CorsPolicy.headersFor}, so the three never diverge.
 */

/** Response headers a cross-origin page may read. */
export const CORS_EXPOSED_HEADERS: readonly string[] = [
  'x-cache',
  'retry-after',
  'www-authenticate',
];

/** The CORS headers of an answer to any origin (the policy with CORS_ORIGINS `*`). */
export const CORS_RESPONSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'access-control-allow-origin': '*',
  'access-control-expose-headers': CORS_EXPOSED_HEADERS.join(', '),
});

/** What an answer that may differ by origin says to caches when the origin is not allowed. */
const VARY_ONLY: Readonly<Record<string, string>> = Object.freeze({ vary: 'Origin' });

/** How long browsers may reuse a preflight's answer (a key in `Authorization` needs one). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * Which origins' pages may read mare-api's answers: any (CORS_ORIGINS `*`, the default with auth
 * off: a page opened from a file or another site watches jobs too), or a list.
 */
export class CorsPolicy {
  /** True when any origin may read answers. */
  readonly anyOrigin: boolean;
  private readonly allowed: ReadonlySet<string>;

  constructor(origins: '*' | readonly string[] = '*') {
    this.anyOrigin = origins === '*';
    this.allowed = new Set(origins === '*' ? [] : origins);
  }

  /** The options of the CORS plugin, for routed answers and preflights. */
  pluginOptions() {
    return {
      origin: this.anyOrigin ? '*' : [...this.allowed],
      exposedHeaders: [...CORS_EXPOSED_HEADERS],
      maxAge: PREFLIGHT_MAX_AGE_SECONDS,
      // A bare OPTIONS gets 204 rather than the plugin's own text/plain 400.
      strictPreflight: false,
    };
  }

  /** The CORS headers of an answer the plugin does not see, to a request from `origin`. */
  headersFor(origin: string | undefined): Readonly<Record<string, string>> {
    if (this.anyOrigin) return CORS_RESPONSE_HEADERS;
    if (origin === undefined || !this.allowed.has(origin)) return VARY_ONLY;
    return {
      'access-control-allow-origin': origin,
      'access-control-expose-headers': CORS_EXPOSED_HEADERS.join(', '),
      vary: 'Origin',
    };
  }
}
