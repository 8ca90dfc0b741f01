import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AppError,
  ErrorBody,
  parseGlobalEventId,
  STREAM_TOKEN_PARAM,
  UuidParam,
} from '../../contract/index.js';
import { visibleTenant } from '../../common/api-keys.js';
import type { HttpApp } from '../../common/http.js';
import { serveAllJobsStream } from '../all-jobs-stream.js';
import { serveJobStream } from '../job-stream.js';
import type { MareContext } from '../mare-context.js';
import { SSE_BASE_HEADERS, SSE_HEADERS } from '../sse-stream.js';

/**
 * Longest a new stream waits for its subscription (Redis down, a cluster failover under way)
 * before it is answered 503 with Retry-After.
 */
const SUBSCRIBE_TIMEOUT_MS = 5000;

const LastEventIdQuery = z.object({
  last_event_id: z.string().max(200).optional(),
  [STREAM_TOKEN_PARAM]: z
    .string()
    .max(2048)
    .optional()
    .describe('A stream token (POST /v1/triton/stream-tokens), instead of an API key header'),
});

/**
 * A stream token opens only the stream it was issued for: one job's (`jobId`), or the all-jobs
 * stream (undefined). Keys and auth off are not limited here.
 */
function requireTokenFor(request: FastifyRequest, jobId: string | undefined): void {
  const grant = request.streamGrant;
  if (!grant || grant.jobId === jobId) return;
  throw new AppError(
    'UNAUTHORIZED',
    grant.jobId === undefined
      ? "This stream token opens the all-jobs stream, not a job's: ask for one with this job_id"
      : 'This stream token opens another stream: ask for one for this stream',
  );
}

/** `Last-Event-ID` from the header (what EventSource sends) or `?last_event_id=` (for curl). */
function lastEventIdOf(
  request: FastifyRequest,
  query: { last_event_id?: string | undefined },
): string | undefined {
  const header = request.headers['last-event-id'];
  const value = (Array.isArray(header) ? header[0] : header) ?? query.last_event_id;
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function parseSeq(id: string | undefined): number {
  if (id === undefined) return 0;
  if (!/^\d{1,15}$/.test(id)) {
    throw new AppError(
      'VALIDATION_FAILED',
      'Last-Event-ID must be the id of an event of this stream (a sequence number)',
    );
  }
  return Number(id);
}

/** HEAD on a stream: the headers a GET would get, no body, no connection kept. */
function headOnly(reply: FastifyReply, headers: Readonly<Record<string, string>>): FastifyReply {
  return reply.code(200).headers(headers).send();
}

/** The answers of one job's stream (502 and 504: triton-api, asked for a snapshot). */
const JOB_STREAM_RESPONSE = {
  200: z.string().describe('text/event-stream: `id: <seq>` and `data: <event JSON>` per event'),
  204: z.null().describe('The job had finished and the client already has its last event'),
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  502: ErrorBody,
  503: ErrorBody,
  504: ErrorBody,
};

/** The answers of the all-jobs stream. */
const ALL_JOBS_STREAM_RESPONSE = {
  200: z
    .string()
    .describe(
      'text/event-stream: `id: <job_id>:<seq>:<stream_id>` and `data: <event JSON>` per event',
    ),
  400: ErrorBody,
  401: ErrorBody,
  503: ErrorBody,
};

/** The two SSE endpoints, one job and all jobs: they parse, check capacity, and hand over. */
export function registerSseRoutes(app: HttpApp, ctx: MareContext): void {
  const { hub, history, snapshots, config, metrics, cors } = ctx;
  const streams = {
    hub,
    history,
    snapshots,
    retryMs: config.sseRetryMs,
    streamOptions: config.sseStream,
    subscribeTimeoutMs: SUBSCRIBE_TIMEOUT_MS,
  };
  /** What a stream for `request` is opened with: its CORS headers depend on its origin but for `*`. */
  const streamsFor = (request: FastifyRequest) => {
    if (!cors || cors.anyOrigin) return { streams, headers: SSE_HEADERS };
    const headers = { ...SSE_BASE_HEADERS, ...cors.headersFor(request.headers.origin) };
    return { streams: { ...streams, streamOptions: { ...config.sseStream, headers } }, headers };
  };

  function ensureCapacity(): void {
    if (hub.size >= config.sseMaxConnections) {
      metrics.sseRejected.inc({ reason: 'capacity' });
      throw new AppError(
        'TOO_MANY_CONNECTIONS',
        'This gateway has as many SSE connections as it accepts; retry shortly',
        1,
      );
    }
  }

  app.get(
    '/v1/triton/jobs/:job_id/subscribe',
    {
      config: { access: 'stream' },
      schema: {
        tags: ['events'],
        summary:
          "Stream one job's events (SSE): history first, then live; closes after the terminal event",
        params: z.object({ job_id: UuidParam }),
        querystring: LastEventIdQuery,
        response: JOB_STREAM_RESPONSE,
      },
    },
    async (request, reply) => {
      const jobId = request.params.job_id;
      requireTokenFor(request, jobId);
      const afterSeq = parseSeq(lastEventIdOf(request, request.query));
      const opened = streamsFor(request);
      if (request.method === 'HEAD') {
        // With auth on, HEAD says no more than GET would: a job the caller may not see is not found.
        if (request.principal) await ctx.lookup.json(jobId, request.principal);
        return headOnly(reply, opened.headers);
      }
      ensureCapacity();
      return serveJobStream(opened.streams, reply, jobId, afterSeq, request.principal);
    },
  );

  app.get(
    '/v1/triton/events',
    {
      config: { access: 'stream' },
      schema: {
        tags: ['events'],
        summary: "Stream every job's events (SSE), resumable with Last-Event-ID",
        querystring: LastEventIdQuery.extend({
          history: z.coerce
            .number()
            .int()
            .min(0)
            .max(1000)
            .default(0)
            .describe('Replay this many recent events first'),
        }),
        response: ALL_JOBS_STREAM_RESPONSE,
      },
    },
    async (request, reply) => {
      requireTokenFor(request, undefined);
      const lastId = lastEventIdOf(request, request.query);
      const anchor = lastId === undefined ? undefined : parseGlobalEventId(lastId);
      if (lastId !== undefined && !anchor) {
        throw new AppError(
          'VALIDATION_FAILED',
          'Last-Event-ID must be the id of an event of this stream ({job_id}:{seq}:{stream_id})',
        );
      }
      const opened = streamsFor(request);
      if (request.method === 'HEAD') return headOnly(reply, opened.headers);
      ensureCapacity();
      return serveAllJobsStream(
        opened.streams,
        reply,
        anchor ? { after: anchor } : { recent: request.query.history },
        visibleTenant(request.principal),
      );
    },
  );
}
