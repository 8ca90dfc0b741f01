import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HttpApp } from '../../common/http.js';

/** The dashboard's files: plain HTML, CSS and one ES module, served as they are (no build). */
const WEB_DIR = new URL('../web/', import.meta.url);

/** One file, read once at start, with everything a response needs. */
interface Asset {
  body: Buffer;
  contentType: string;
  etag: string;
  cacheControl: string;
}

/**
 * Assets are linked as `/assets/{name}?v={hash}`: a new file means a new URL, so browsers may
 * keep each version for good and never ask again.
 */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * Only what the page needs: its own scripts, styles and API (same origin), no inline code, no
 * framing. The favicon is an inline `data:` image so that the page makes no request for one.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function asset(body: Buffer, contentType: string, cacheControl: string): Asset {
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 16);
  return { body, contentType, etag: `"${hash}"`, cacheControl };
}

function versionOf(a: Asset): string {
  return a.etag.slice(1, -1);
}

function send(
  request: FastifyRequest,
  reply: FastifyReply,
  a: Asset,
  headers: Record<string, string> = {},
): FastifyReply {
  // X-Content-Type-Options comes with every answer (RESPONSE_POLICY_HEADERS).
  reply.headers(headers).header('cache-control', a.cacheControl).header('etag', a.etag);
  if (request.headers['if-none-match'] === a.etag) return reply.code(304).send();
  return reply.type(a.contentType).send(a.body);
}

/**
 * The dashboard: `GET /` and its assets under `/assets/`. The files are read once, here, when
 * the routes are registered (a missing file stops start-up rather than failing requests).
 */
export function registerWebRoutes(app: HttpApp): void {
  const read = (name: string) => readFileSync(new URL(name, WEB_DIR));
  const assets: Record<string, Asset> = {
    'app.css': asset(read('app.css'), 'text/css; charset=utf-8', IMMUTABLE),
    'app.js': asset(read('app.js'), 'text/javascript; charset=utf-8', IMMUTABLE),
  };
  const html = read('index.html')
    .toString('utf8')
    .replace(/\{\{asset:([\w.-]+)\}\}/g, (_match, name: string) => {
      const a = assets[name];
      if (!a) throw new Error(`index.html links an unknown asset: ${name}`);
      return `/assets/${name}?v=${versionOf(a)}`;
    });
  // The page itself is revalidated every time (cheaply, by its ETag), so a new version of the
  // assets is picked up at the next load.
  const page = asset(Buffer.from(html, 'utf8'), 'text/html; charset=utf-8', 'no-cache');

  app.get('/', { schema: { hide: true }, config: { access: 'public' } }, (request, reply) =>
    send(request, reply, page, {
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'referrer-policy': 'no-referrer',
    }),
  );

  for (const [name, a] of Object.entries(assets)) {
    app.get(
      `/assets/${name}`,
      { schema: { hide: true }, config: { access: 'public' } },
      (request, reply) => send(request, reply, a),
    );
  }
}
