import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, ErrorBody, parseGlobalEventId, UuidParam } from '../../contract/index.js';
import type { HttpApp } from '../../common/http.js';
import { serveAllJobsStream } from '../all-jobs-stream.js';
import { serveJobStream } from '../job-stream.js';
import type { MareContext } from '../mare-context.js';
import { SSE_HEADERS } from '../sse-stream.js';

/**
 * Longest a new stream waits for its subscription (Redis down, a cluster failover under way)
 * before it is answered 503 with Retry-After.
 */
const SUBSCRIBE_TIMEOUT_MS = 5000;

const LastEventIdQuery = z.object({
  last_event_id: z.string().max(200).optional(),
});

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
function headOnly(reply: FastifyReply): FastifyReply {
  return reply.code(200).headers(SSE_HEADERS).send();
}

const SSE_RESPONSE = {
  200: z.string().describe('text/event-stream: `id: <seq>` and `data: <event JSON>` per event'),
  204: z.null().describe('The job had finished and the client already has its last event'),
  400: ErrorBody,
  404: ErrorBody,
  503: ErrorBody,
};

/** The two SSE endpoints, one job and all jobs: they parse, check capacity, and hand over. */
export function registerSseRoutes(app: HttpApp, ctx: MareContext): void {
  const { hub, history, snapshots, config, metrics } = ctx;
  const streams = {
    hub,
    history,
    snapshots,
    retryMs: config.sseRetryMs,
    streamOptions: config.sseStream,
    subscribeTimeoutMs: SUBSCRIBE_TIMEOUT_MS,
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
      schema: {
        tags: ['events'],
        summary:
          "Stream one job's events (SSE): history first, then live; closes after the terminal event",
        params: z.object({ job_id: UuidParam }),
        querystring: LastEventIdQuery,
        response: SSE_RESPONSE,
      },
    },
    async (request, reply) => {
      const afterSeq = parseSeq(lastEventIdOf(request, request.query));
      if (request.method === 'HEAD') return headOnly(reply);
      ensureCapacity();
      return serveJobStream(streams, reply, request.params.job_id, afterSeq);
    },
  );

  app.get(
    '/v1/triton/events',
    {
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
        response: SSE_RESPONSE,
      },
    },
    async (request, reply) => {
      const lastId = lastEventIdOf(request, request.query);
      const anchor = lastId === undefined ? undefined : parseGlobalEventId(lastId);
      if (lastId !== undefined && !anchor) {
        throw new AppError(
          'VALIDATION_FAILED',
          'Last-Event-ID must be the id of an event of this stream ({job_id}:{seq}:{stream_id})',
        );
      }
      if (request.method === 'HEAD') return headOnly(reply);
      ensureCapacity();
      return serveAllJobsStream(
        streams,
        reply,
        anchor ? { after: anchor } : { recent: request.query.history },
      );
    },
  );
}
