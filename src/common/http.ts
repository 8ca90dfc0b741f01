import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import type { FastifyChildLoggerFactory } from 'fastify/types/logger.js';
import {
  createServer,
  ServerResponse,
  STATUS_CODES,
  type IncomingMessage,
  type OutgoingHttpHeader,
  type OutgoingHttpHeaders,
} from 'node:http';
import type { Socket } from 'node:net';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { AppError, type ErrorBody, type ErrorCode } from '../contract/errors.js';
import { redactQuery } from './error-serializer.js';
import type { Logger } from './logger.js';
import { RepeatedErrorLog } from './repeated-error-log.js';
import { RouteMethods } from './route-methods.js';

const keepParentLogger: FastifyChildLoggerFactory = (parent) => parent;

/**
 * Headers on every answer of both APIs, whoever writes it (a route, the cached-lookup fast
 * path, an SSE stream, the error answers of the HTTP parser): the one place they are set.
 * - `nosniff`: a browser never runs an answer as something other than its declared type;
 * - `X-Frame-Options: DENY`: no other site frames a page of ours to trick clicks on it (pages
 *   also say `frame-ancestors 'none'` in their CSP);
 * - `Referrer-Policy: no-referrer`: a URL of ours (a stream token in its query) never travels
 *   to another site in a Referer;
 * - `Cross-Origin-Resource-Policy: same-origin`: other sites cannot embed our answers as images,
 *   scripts and the like (it does not touch CORS reads, which CORS_ORIGINS governs).
 */
export const RESPONSE_POLICY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
});
const POLICY_ENTRIES = Object.entries(RESPONSE_POLICY_HEADERS);
const POLICY_RAW = POLICY_ENTRIES.map(([name, value]) => `${name}: ${value}\r\n`).join('');
const [FIRST_POLICY_HEADER = ''] = Object.keys(RESPONSE_POLICY_HEADERS);

/**
 * A response that adds the policy headers as its head is written, whoever writes it (Fastify,
 * the fast path, an SSE stream, or Node for an answer with no head of its own). They are added
 * to the head, not set ahead with `setHeader`: a header set ahead turns every later one into a
 * stored entry, and an idle SSE connection would keep all of them for as long as it is open.
 */
class PolicyResponse extends ServerResponse {
  override writeHead(
    statusCode: number,
    reasonOrHeaders?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    maybeHeaders?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    const reason = typeof reasonOrHeaders === 'string' ? reasonOrHeaders : undefined;
    const given = typeof reasonOrHeaders === 'string' ? maybeHeaders : reasonOrHeaders;
    let headers: OutgoingHttpHeaders | OutgoingHttpHeader[];
    if (Array.isArray(given)) {
      headers = given.includes(FIRST_POLICY_HEADER) ? given : [...given, ...POLICY_ENTRIES.flat()];
    } else if (given && FIRST_POLICY_HEADER in given) {
      headers = given;
    } else if (this.hasHeader(FIRST_POLICY_HEADER)) {
      headers = given ?? {};
    } else {
      headers = { ...RESPONSE_POLICY_HEADERS, ...given };
    }
    if (reason === undefined) super.writeHead(statusCode, headers);
    else super.writeHead(statusCode, reason, headers);
    // Node keeps the head it built (`_header`, written as latin-1 with the first chunk) for the
    // response's life, as a rope of a few dozen pieces: one flat copy of the same text is about
    // 800 bytes less for every SSE connection held open.
    const built = this as unknown as { _header?: unknown };
    if (typeof built._header === 'string') {
      built._header = Buffer.from(built._header, 'latin1').toString('latin1');
    }
    return this;
  }
}

/** HTTP status of each error code: the one place codes meet statuses. */
const STATUS_OF: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  INVALID_ID: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  CLIENT_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  TEMPLATE_NOT_FOUND: 404,
  JOB_FINISHED: 409,
  RATE_LIMITED: 429,
  TOO_MANY_CONNECTIONS: 503,
  UPSTREAM_UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
  UPSTREAM_ERROR: 502,
  NOT_READY: 503,
  SHUTTING_DOWN: 503,
  INTERNAL: 500,
};

/** The HTTP status an error code is answered with. */
export function statusOf(code: ErrorCode): number {
  return STATUS_OF[code];
}

/** Builds the body of an error response. */
export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Sends an {@link AppError} with its status (and `Retry-After` when it has one). */
export function sendError(reply: FastifyReply, err: AppError): FastifyReply {
  if (err.retryAfterSeconds !== undefined) reply.header('retry-after', err.retryAfterSeconds);
  return reply.code(statusOf(err.code)).send(errorBody(err.code, err.message));
}

/**
 * The key that made a JSON body unacceptable although it parses (`__proto__`, or a
 * `constructor.prototype`: keys that would reach an object's prototype), if that was the reason.
 * Only asked after the parser refused a body, so valid bodies cost nothing more.
 */
function prototypeKeyIn(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    return undefined;
  }
  const has = (o: object, key: string) => Object.prototype.hasOwnProperty.call(o, key);
  // Without recursion: a hostile body may nest deeper than the stack goes.
  const pending: unknown[] = [parsed];
  while (pending.length > 0) {
    const node = pending.pop();
    if (typeof node !== 'object' || node === null) continue;
    if (has(node, '__proto__')) return '__proto__';
    const ctor = has(node, 'constructor') ? (node as { constructor: unknown }).constructor : null;
    if (typeof ctor === 'object' && ctor !== null && has(ctor, 'prototype')) {
      return 'constructor.prototype';
    }
    for (const value of Object.values(node)) pending.push(value);
  }
  return undefined;
}

/** Fastify's own client errors, by their codes. */
function fromFastifyError(err: FastifyError): AppError | undefined {
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      return new AppError('VALIDATION_FAILED', 'Request URL is not validly percent-encoded');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AppError('INVALID_ID', 'A path parameter is longer than any valid id');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', 'Request body is larger than this server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError(
        'UNSUPPORTED_MEDIA_TYPE',
        'Send the request body as application/json (or send no body)',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('VALIDATION_FAILED', 'Request body is not valid JSON');
    default:
      break;
  }
  if (err instanceof SyntaxError || err.statusCode === 400) {
    return new AppError('VALIDATION_FAILED', `Bad request: ${err.message}`);
  }
  if (err.statusCode === 413) return new AppError('PAYLOAD_TOO_LARGE', err.message);
  if (err.statusCode === 415) return new AppError('UNSUPPORTED_MEDIA_TYPE', err.message);
  return undefined;
}

/**
 * A request Node's HTTP parser rejects (oversized headers, a malformed request, headers too slow
 * to arrive) never reaches Fastify: answer it on the socket, in the house error shape, and close.
 */
function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError(
          'HEADERS_TOO_LARGE',
          'Request headers (or URL) are larger than this server accepts',
        )
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('REQUEST_TIMEOUT', 'The request did not arrive in time')
        : new AppError('VALIDATION_FAILED', 'Malformed HTTP request');
  const status = statusOf(error.code);
  const body = JSON.stringify(errorBody(error.code, error.message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n` +
        `Content-Type: application/json; charset=utf-8\r\n${POLICY_RAW}` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** One route as registered: a method and a path pattern (`/jobs/:job_id`, `/docs/static/*`). */
export interface RouteEntry {
  readonly method: string;
  readonly url: string;
}

const routeTables = new WeakMap<object, RouteEntry[]>();

/**
 * Every route an app built by {@link createHttpApp} registered, plugins' included, in order:
 * what checks that no route escapes a rule (the access-control tests walk it).
 */
export function routeTable(app: HttpApp): readonly RouteEntry[] {
  return routeTables.get(app) ?? [];
}

/** A Fastify instance as {@link createHttpApp} makes it: the house's logger and zod schemas. */
export type HttpApp = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  Logger,
  ZodTypeProvider
>;

/** How {@link createHttpApp} builds an API's server. */
export interface HttpAppOptions {
  /** Where Fastify logs (unhandled errors; requests are not logged one by one). */
  logger: Logger;
  /** Largest accepted body. @defaultValue 64 KiB */
  bodyLimit?: number;
  /** Peers trusted to name the client in X-Forwarded-For (Fastify's `trustProxy`). @defaultValue false */
  trustProxy?: boolean | string;
  /**
   * Sees every request before Fastify does and may answer it itself; otherwise it calls
   * `next()` (at once or later: a GET has no body to lose meanwhile).
   */
  fastPath?: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
}

/**
 * A Fastify instance with the house rules: zod-validated routes, JSON bodies only (an empty
 * body is fine: a plain `curl -X POST -H 'Content-Type: application/json'` sends none), and every
 * error as `{"error": {"code", "message"}}` with the right status, a 5xx never leaking its cause.
 */
export function createHttpApp({
  logger,
  bodyLimit = 64 * 1024,
  trustProxy = false,
  fastPath,
}: HttpAppOptions): HttpApp {
  const app = Fastify({
    loggerInstance: logger,
    // No per-request child logger: requests are not logged one by one, and an SSE connection
    // would keep its child alive for as long as it stays open.
    childLoggerFactory: keepParentLogger,
    bodyLimit,
    trustProxy,
    // Our own server, so that every answer gets the policy headers before anything writes it.
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
      const server = createServer({ ServerResponse: PolicyResponse }, (req, res) => {
        if (fastPath) fastPath(req, res, () => handler(req, res));
        else handler(req, res);
      });
      // Fastify's own default, which it does not apply to a server it did not create.
      server.keepAliveTimeout = 72_000;
      return server;
    },
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    // A URL the router cannot decode (`%zz`) or a parameter too long for it is answered before
    // any route runs, by default in Fastify's own body shape: answer it in ours.
    frameworkErrors: (err, _request, reply) => {
      const mapped = fromFastifyError(err) ?? new AppError('VALIDATION_FAILED', 'Bad request');
      void sendError(reply, mapped);
    },
    clientErrorHandler: answerClientError,
  }).withTypeProvider<ZodTypeProvider>();

  // Node answers an `Expect` other than 100-continue with a bare 417 of its own; RFC 9110 lets a
  // server ignore an expectation it does not know, so the request is served as usual instead.
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void parseJson(req, text, (err, parsed) => {
      const key = err ? prototypeKeyIn(text) : undefined;
      if (key)
        done(new AppError('VALIDATION_FAILED', `Request body must not contain the key ${key}`));
      else done(err, parsed);
    });
  });

  const routes = new RouteMethods();
  const table: RouteEntry[] = [];
  routeTables.set(app, table);
  app.addHook('onRoute', (route) => {
    routes.add(route.url, route.method);
    for (const method of [route.method].flat()) table.push({ method, url: route.url });
  });
  app.setNotFoundHandler((request, reply) => {
    const allowed = routes.allowedFor(request.url);
    if (allowed.length > 0) {
      const list = allowed.join(', ');
      return reply
        .code(405)
        .header('allow', list)
        .send(
          errorBody(
            'METHOD_NOT_ALLOWED',
            `${request.method} is not allowed on ${redactQuery(request.url)}; it allows ${list}`,
          ),
        );
    }
    return reply
      .code(404)
      .send(
        errorBody('ROUTE_NOT_FOUND', `No route for ${request.method} ${redactQuery(request.url)}`),
      );
  });

  const unhandled = new RepeatedErrorLog(logger);
  app.setErrorHandler((err: FastifyError | AppError | Error, request, reply) => {
    if (err instanceof AppError) return sendError(reply, err);
    if (hasZodFastifySchemaValidationErrors(err)) {
      const first = err.validation[0];
      const where = [
        err.validationContext,
        first?.instancePath.replace(/^\//, '').replace(/\//g, '.'),
      ]
        .filter(Boolean)
        .join('.');
      const isId = err.validationContext === 'params';
      return sendError(
        reply,
        new AppError(
          isId ? 'INVALID_ID' : 'VALIDATION_FAILED',
          `${where || 'request'}: ${first?.message ?? 'is invalid'}`,
        ),
      );
    }
    const mapped = fromFastifyError(err as FastifyError);
    if (mapped) return sendError(reply, mapped);
    unhandled.error(err, 'Unhandled request error', {
      url: redactQuery(request.url),
      method: request.method,
    });
    return reply.code(500).send(errorBody('INTERNAL', 'Internal server error'));
  });

  return app;
}

/** The URL to reach a server bound to `host:port` from this machine. */
export function localUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** The port a listening Fastify app is bound to. */
export function boundPort(app: FastifyInstance | HttpApp, fallback: number): number {
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : fallback;
}
