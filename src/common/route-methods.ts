/** The order methods are listed in an `Allow` header. */
const ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `/clients/:client_id/templates` as a pattern matching the paths it serves. */
function patternOf(url: string): RegExp {
  const segments = url
    .replace(/\/+$/, '')
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : escapeRegExp(segment)));
  // Trailing slashes are ignored, as the router ignores them.
  return new RegExp(`^${segments.join('/')}/*$`);
}

/**
 * Which methods each path is served with, learnt from the routes as they are registered: what
 * a request with another method is told (405 and `Allow`) instead of "no such route".
 */
export class RouteMethods {
  private readonly routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  /** A route for every path (`*`) with OPTIONS: the CORS preflight. */
  private optionsEverywhere = false;

  /** Records a route (Fastify's `onRoute`). */
  add(url: string, method: string | string[]): void {
    const methods = Array.isArray(method) ? method : [method];
    if (url.includes('*')) {
      if (methods.includes('OPTIONS')) this.optionsEverywhere = true;
      return;
    }
    let route = this.routes.get(url);
    if (!route) {
      route = { pattern: patternOf(url), methods: new Set() };
      this.routes.set(url, route);
    }
    for (const m of methods) route.methods.add(m.toUpperCase());
  }

  /** The methods some route serves `path` with (its query left out), in `Allow` order; none: no route. */
  allowedFor(url: string): string[] {
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const found = new Set<string>();
    for (const { pattern, methods } of this.routes.values()) {
      if (pattern.test(path)) for (const m of methods) found.add(m);
    }
    if (found.size === 0) return [];
    if (this.optionsEverywhere) found.add('OPTIONS');
    const rank = (m: string) => {
      const at = ORDER.indexOf(m);
      return at === -1 ? (m === 'OPTIONS' ? ORDER.length + 1 : ORDER.length) : at;
    };
    return [...found].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  }
}
