import { z } from 'zod';
import {
  Client,
  ClientList,
  CreateClientBody,
  CreateValuePropositionBody,
  ErrorBody,
  JobAccepted,
  JobStatusDocument,
  TemplateList,
  UuidParam,
  ValueProposition,
} from '../../contract/index.js';
import type { HttpApp } from '../../common/http.js';
import type { RateLimitKind, RouteLimit } from '../../common/rate-limit.js';
import type { MareContext } from '../mare-context.js';

const ClientParams = z.object({ client_id: UuidParam });
const JobParams = z.object({ job_id: UuidParam });
const upstreamErrors = {
  400: ErrorBody,
  404: ErrorBody,
  502: ErrorBody,
  503: ErrorBody,
  504: ErrorBody,
};

/**
 * Submissions, cache-first lookups, and the records the dashboard needs (through triton-api),
 * each made for the caller: with auth on, triton-api shows and changes only its tenant's.
 */
export function registerJobRoutes(
  app: HttpApp,
  ctx: MareContext,
  /** Route config that rate-limits submissions and writes (empty: no limit). */
  limits: Partial<Record<RateLimitKind, RouteLimit>> = {},
): void {
  const { triton, lookup, streamTokens } = ctx;

  app.post(
    '/v1/triton/clients/:client_id/generate-templates',
    {
      schema: {
        tags: ['jobs'],
        summary:
          'Submit a template-generation job for a client; watch it with /v1/triton/jobs/{job_id}/subscribe',
        params: ClientParams,
        response: { 202: JobAccepted, 429: ErrorBody, ...upstreamErrors },
      },
      config: limits.submit ?? {},
    },
    async (request, reply) => {
      const { principal } = request;
      const accepted = await triton.submitGeneration(request.params.client_id, {
        address: request.ip,
        principal,
      });
      if (!streamTokens || !principal) return reply.code(202).send(accepted);
      // What a page needs to watch the job with EventSource, without holding the key.
      const { token } = await streamTokens.issue(principal, accepted.job_id);
      return reply.code(202).send({ ...accepted, stream_token: token });
    },
  );

  app.get(
    '/v1/triton/jobs/:job_id',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's status: from the cache when it has finished, else from triton-api",
        params: JobParams,
        response: { 200: JobStatusDocument, ...upstreamErrors },
      },
    },
    async (request, reply) => {
      const { json, cached } = await lookup.json(request.params.job_id, request.principal);
      // The document's JSON as stored: Fastify sends a string with a JSON type as is.
      return reply
        .header('x-cache', cached ? 'hit' : 'miss')
        .type('application/json; charset=utf-8')
        .send(json as unknown as JobStatusDocument);
    },
  );

  app.post(
    '/v1/triton/jobs/:job_id/cancel',
    {
      schema: {
        tags: ['jobs'],
        summary:
          'Cancel a job: a queued one never starts, a running one stops within a second; its watchers get job:cancelled',
        params: JobParams,
        response: { 202: JobStatusDocument, 409: ErrorBody, 429: ErrorBody, ...upstreamErrors },
      },
      config: limits.write ?? {},
    },
    async (request, reply) =>
      reply.code(202).send(
        await triton.cancelJob(request.params.job_id, {
          address: request.ip,
          principal: request.principal,
        }),
      ),
  );

  app.get(
    '/v1/triton/jobs/:job_id/templates',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's templates, in order",
        params: JobParams,
        response: { 200: TemplateList, ...upstreamErrors },
      },
    },
    async (request) =>
      triton.listJobTemplates(request.params.job_id, { principal: request.principal }),
  );

  app.get(
    '/v1/triton/clients',
    {
      schema: {
        tags: ['clients'],
        summary: 'List clients, newest first',
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
        }),
        response: { 200: ClientList, ...upstreamErrors },
      },
    },
    async (request) => triton.listClients(request.query, { principal: request.principal }),
  );

  app.post(
    '/v1/triton/clients',
    {
      schema: {
        tags: ['clients'],
        summary: 'Create a client',
        body: CreateClientBody,
        response: { 201: Client, 429: ErrorBody, ...upstreamErrors },
      },
      config: limits.write ?? {},
    },
    async (request, reply) =>
      reply.code(201).send(
        await triton.createClient(request.body, {
          address: request.ip,
          principal: request.principal,
        }),
      ),
  );

  app.post(
    '/v1/triton/clients/:client_id/value-propositions',
    {
      schema: {
        tags: ['clients'],
        summary: "Add a client's value proposition (an active one replaces the previous)",
        params: ClientParams,
        body: CreateValuePropositionBody,
        response: { 201: ValueProposition, 429: ErrorBody, ...upstreamErrors },
      },
      config: limits.write ?? {},
    },
    async (request, reply) =>
      reply.code(201).send(
        await triton.createValueProposition(request.params.client_id, request.body, {
          address: request.ip,
          principal: request.principal,
        }),
      ),
  );
}
