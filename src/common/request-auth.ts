import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, STREAM_TOKEN_PARAM } from '../contract/index.js';
import type { ApiKeys, Principal } from './api-keys.js';
import { gatewayIdentityOf } from './gateway-identity.js';
import { sendError, type HttpApp } from './http.js';

/**
 * Who may call a route, declared in its `config.access`:
 * - `public`: anyone, credentials ignored (health, docs, the dashboard's files);
 * - `optional`: anyone; a key that is sent must work (it says who the caller is);
 * - `key` (the default, for every route that does not say, unknown paths included): an API key;
 * - `stream`: a key, or a stream token in `?token=` (what a browser's EventSource can send);
 * - `admin`: a key, also accepted as the password of HTTP Basic so that a browser can open the
 *   page; the route's own guard decides whether it must be an admin's.
 */
export type RouteAccess = 'public' | 'optional' | 'key' | 'stream' | 'admin';

/** What a verified stream token grants: a principal, for one job's stream or the all-jobs one. */
export interface StreamGrant {
  principal: Principal;
  /** The job whose stream it opens; undefined: the all-jobs stream. */
  jobId: string | undefined;
}

/** Checks stream tokens (mare-api's `StreamTokens`). */
export interface StreamTokenVerifier {
  /** Resolves with what the token grants; rejects with an `UNAUTHORIZED` AppError. */
  verify(token: string): Promise<StreamGrant>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (see {@link RouteAccess}). @defaultValue 'key' */
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** Who the request acts for; undefined while auth is off (or on an open route). */
    principal: Principal | undefined;
    /** Set when the request was let in by a stream token. */
    streamGrant: StreamGrant | undefined;
  }
}

/** What {@link registerRequestAuth} checks credentials with. */
export interface RequestAuthOptions {
  keys: ApiKeys;
  /**
   * triton-api: a request carrying GATEWAY_SECRET acts for the caller mare-api names in its
   * identity headers, which nobody else can set.
   */
  gatewaySecret?: string | undefined;
  /** mare-api: what checks `?token=` on stream routes. */
  streamTokens?: StreamTokenVerifier;
  /**
   * Access of the routes under a path that do not declare one (routes that plugins register:
   * the API docs, the queue UI).
   */
  accessByPrefix?: Readonly<Record<string, RouteAccess>>;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const BASIC = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i;

/** The credential a request sends, if any; `null` when its Authorization header is unusable. */
function credentialOf(request: FastifyRequest, basic: boolean): string | undefined | null {
  const header = request.headers.authorization;
  if (header === undefined || header === '') return undefined;
  const bearer = BEARER.exec(header);
  if (bearer) return bearer[1];
  const encoded = basic ? BASIC.exec(header)?.[1] : undefined;
  if (encoded === undefined) return null;
  // A browser's login prompt: the key is the password (or the user name, with no password).
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return decoded;
  const password = decoded.slice(colon + 1);
  return password === '' ? decoded.slice(0, colon) : password;
}

function tokenOf(request: FastifyRequest): string | undefined | null {
  const value = (request.query as Record<string, unknown> | undefined)?.[STREAM_TOKEN_PARAM];
  if (value === undefined) return undefined;
  return typeof value === 'string' && value !== '' ? value : null;
}

/**
 * Declares `request.principal` and `request.streamGrant`, and, when `options` are given (auth
 * on), checks every request before it is routed on: it sets the principal, or answers 401 (no
 * credential, or one that does not work) in the house error shape with `WWW-Authenticate`.
 * Must be registered before the routes, and after the CORS plugin (preflights carry no
 * credentials and pass). With auth off it adds nothing to a request's path.
 */
export function registerRequestAuth(app: HttpApp, options: RequestAuthOptions | undefined): void {
  app.decorateRequest('principal', undefined);
  app.decorateRequest('streamGrant', undefined);
  if (!options) return;
  const { keys, streamTokens, accessByPrefix = {} } = options;
  const named = options.gatewaySecret ? gatewayIdentityOf(options.gatewaySecret) : undefined;
  const prefixes = Object.entries(accessByPrefix);

  app.addHook('onRoute', (route) => {
    if (route.config?.access !== undefined) return;
    const match = prefixes.find(([prefix]) => route.url.startsWith(prefix));
    if (match) route.config = { ...route.config, access: match[1] };
  });

  const refuse = (reply: FastifyReply, challenge: string, message: string) =>
    sendError(reply.header('www-authenticate', challenge), new AppError('UNAUTHORIZED', message));

  app.addHook('onRequest', async (request, reply) => {
    // CORS preflights carry no credentials; the CORS plugin answers them.
    if (request.method === 'OPTIONS') return;
    const access = request.routeOptions.config.access ?? 'key';
    if (access === 'public') return;
    const challenge =
      access === 'admin'
        ? 'Basic realm="triton-events admin", charset="UTF-8"'
        : 'Bearer realm="triton-events"';

    const gateway = named?.(request);
    if (gateway) {
      request.principal = gateway;
      return;
    }
    if (access === 'stream' && streamTokens) {
      const token = tokenOf(request);
      if (token === null) return refuse(reply, challenge, 'The stream token is empty');
      if (token !== undefined) {
        let grant: StreamGrant;
        try {
          grant = await streamTokens.verify(token);
        } catch (err) {
          if (err instanceof AppError && err.code === 'UNAUTHORIZED') {
            return refuse(reply, challenge, err.message);
          }
          throw err;
        }
        request.principal = grant.principal;
        request.streamGrant = grant;
        return;
      }
    }
    const credential = credentialOf(request, access === 'admin');
    if (credential === null) {
      return refuse(reply, challenge, 'Send the API key as Authorization: Bearer <key>');
    }
    if (credential === undefined) {
      if (access === 'optional') return;
      return refuse(
        reply,
        challenge,
        access === 'stream'
          ? 'An API key (Authorization: Bearer <key>) or a stream token (?token=) is required'
          : access === 'admin'
            ? 'An admin API key is required: send Authorization: Bearer <key>, or give the key as the password when the browser asks'
            : 'An API key is required: send Authorization: Bearer <key>',
      );
    }
    const principal = await keys.verify(credential);
    if (!principal) {
      return refuse(reply, challenge, 'The API key is not valid (unknown, revoked or mistyped)');
    }
    request.principal = principal;
  });
}

/**
 * A guard for what only admins may use (the queue UI, which holds every tenant's jobs): an
 * admin's key passes, any other is answered 403.
 */
export async function requireAdmin(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.principal?.admin) return;
  // Awaiting the reply waits until it is sent, so no later hook or handler runs.
  await sendError(reply, new AppError('FORBIDDEN', 'This needs an admin key'));
}
