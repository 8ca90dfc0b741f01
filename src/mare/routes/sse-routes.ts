import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AppError,
  closingComment,
  ErrorBody,
  formatSseEvent,
  isTerminalEvent,
  jobSnapshot,
  parseGlobalEventId,
  resyncFrame,
  retryFrame,
  TERMINAL_STATUSES,
  UuidParam,
} from '../../contract/index.js';
import type { HttpApp } from '../../common/http.js';
import type { StoredEvent } from '../event-history.js';
import { GlobalStream, JobStream } from '../sse-hub.js';
import type { MareContext } from '../mare-context.js';

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

const SSE_RESPONSE = {
  200: z.string().describe('text/event-stream: `id: <seq>` and `data: <event JSON>` per event'),
  204: z.null().describe('The job had finished and the client already has its last event'),
  400: ErrorBody,
  404: ErrorBody,
  503: ErrorBody,
};

/** The two SSE endpoints: one job, and all jobs. */
export function registerSseRoutes(app: HttpApp, ctx: MareContext): void {
  const { hub, history, lookup, config, metrics } = ctx;
  const streamOptions = config.sseStream;

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
      const jobId = request.params.job_id;
      const afterSeq = parseSeq(lastEventIdOf(request, request.query));
      ensureCapacity();

      // Register before reading history, or an event published in between would be lost;
      // the stream buffers live events until it opens and drops the ones history replayed.
      const stream = new JobStream(reply.raw, jobId, afterSeq, streamOptions);
      hub.addJobStream(stream);

      let preamble = retryFrame(config.sseRetryMs);
      let replay: StoredEvent[] = [];
      let resyncedTo: number | undefined;
      let finished: 'completed' | 'failed' | undefined;
      try {
        const { events, latest } = await history.readJob(jobId, afterSeq);
        if (events[0] && events[0].event.seq === afterSeq + 1) {
          replay = events;
        } else if (latest && latest.event.seq === afterSeq) {
          // The client has everything; a finished job tells it to stop reconnecting.
          if (isTerminalEvent(latest.event)) {
            stream.cancel();
            return reply.code(204).send(null);
          }
        } else {
          // Nothing to replay from: the job is unknown to history (404 unless triton-api
          // knows it), or what the client missed was trimmed or expired. Resync with a snapshot.
          const doc = await lookup.document(jobId);
          resyncedTo = latest?.event.seq ?? 0;
          preamble += formatSseEvent(resyncedTo, JSON.stringify(jobSnapshot(doc, resyncedTo)));
          if (TERMINAL_STATUSES.has(doc.status)) finished = doc.status as 'completed' | 'failed';
        }
      } catch (err) {
        stream.cancel();
        throw err;
      }

      reply.hijack();
      stream.open(preamble, replay, resyncedTo);
      if (finished) stream.end(closingComment(finished));
      request.log.debug(
        { job_id: jobId, replayed: replay.length, after_seq: afterSeq },
        'SSE job stream opened',
      );
      return reply;
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
          'Last-Event-ID must be the id of an event of this stream ({job_id}:{seq})',
        );
      }
      ensureCapacity();

      const stream = new GlobalStream(reply.raw, streamOptions);
      hub.addGlobalStream(stream);
      let preamble = retryFrame(config.sseRetryMs);
      let replay: StoredEvent[] = [];
      try {
        if (anchor) {
          const missed = await history.readGlobalAfter(anchor.jobId, anchor.seq);
          if (missed) replay = missed;
          else preamble += resyncFrame('history_unavailable');
        } else {
          replay = await history.readGlobalRecent(request.query.history);
        }
      } catch (err) {
        stream.cancel();
        throw err;
      }
      reply.hijack();
      stream.open(preamble, replay);
      return reply;
    },
  );
}
