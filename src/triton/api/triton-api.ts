import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import {
  AppError,
  Client,
  ClientList,
  CreateClientBody,
  CreateValuePropositionBody,
  ErrorBody,
  JobAccepted,
  JobStatusDocument,
  Template,
  TemplateList,
  UuidParam,
  ValueProposition,
  ValuePropositionList,
} from '../../contract/index.js';
import { registerApiDocs } from '../../common/api-docs.js';
import { registerHealthRoutes, type ReadinessCheck } from '../../common/health.js';
import { createHttpApp, type HttpApp } from '../../common/http.js';
import type { Logger } from '../../common/logger.js';
import { registerMetricsRoute } from '../../common/metrics.js';
import { registerSubmitRateLimit, type SubmitRateLimitOptions } from '../../common/rate-limit.js';
import type { TritonMetrics } from '../triton-metrics.js';
import type { TritonStore } from '../db/triton-store.js';
import type { EventPublisher } from '../events/event-publisher.js';
import { enqueueGeneration, type GenerationQueue } from '../generation-queue.js';
import { failJob } from '../job-failure.js';

export interface TritonApiDeps {
  store: TritonStore;
  queue: GenerationQueue;
  publisher: EventPublisher;
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  bodyLimit?: number;
  /**
   * Peers trusted to name the client (X-Forwarded-For): mare-api forwards its client's address,
   * so that the submission limit counts per end user, not per gateway.
   */
  trustProxy?: boolean | string;
  metrics?: TritonMetrics;
  /** Limit on submissions per client address per minute, counted in this Redis. */
  rateLimit?: SubmitRateLimitOptions;
}

const ClientParams = z.object({ client_id: UuidParam });
const JobParams = z.object({ job_id: UuidParam });
const TemplateParams = z.object({ template_id: UuidParam });
const Page = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});
const errors = { 400: ErrorBody, 404: ErrorBody };

/** How long a submission may wait for Redis before it is refused (mare-api waits 5 s). */
const SUBMIT_TIMEOUT_MS = 3000;

/**
 * Accepts a generation job: record it, publish `job:queued` (so it is seq 1 in the job's
 * history, before any worker can publish), then enqueue. A job for a client that does not
 * exist is accepted too, and then fails saying so, as the seed's failure drill expects.
 * When Redis does not answer in time the submission is refused (503) and the job is never run.
 */
async function submitGeneration(deps: TritonApiDeps, clientId: string): Promise<JobAccepted> {
  const { store, publisher, queue, logger } = deps;
  const jobId = randomUUID();
  await store.createJob(jobId, clientId);
  let timedOut = false;
  const fail = (message: string) =>
    failJob(deps, { jobId, clientId, message }).catch((err: Error) =>
      logger.error({ job_id: jobId, err: err.message }, 'Could not record a refused job'),
    );
  const accept = async () => {
    await publisher.publish({
      event_type: 'job:queued',
      timestamp: new Date().toISOString(),
      job_id: jobId,
      client_id: clientId,
      status: 'queued',
    });
    // Redis answered too late: the client was told no, so the job must not run.
    if (timedOut)
      return void (await fail('Template generation failed: the job queue was unavailable'));
    await enqueueGeneration(queue, { job_id: jobId, client_id: clientId });
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      accept(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new Error(`no answer from Redis within ${SUBMIT_TIMEOUT_MS} ms`));
        }, SUBMIT_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    const message = 'Template generation failed: the job queue is unavailable';
    logger.error({ job_id: jobId, err: (err as Error).message }, message);
    if (!timedOut) await fail(message);
    throw new AppError('UPSTREAM_UNAVAILABLE', 'The job queue is unavailable; retry shortly', 5);
  } finally {
    clearTimeout(timer);
  }
  logger.info({ job_id: jobId, client_id: clientId }, `Accepted generation job ${jobId}`);
  return { job_id: jobId, status: 'queued' };
}

/** triton-api: clients, value propositions, jobs and templates over HTTP (the seed's paths). */
export async function buildTritonApi(deps: TritonApiDeps): Promise<HttpApp> {
  const { store } = deps;
  const app = createHttpApp({
    logger: deps.logger,
    bodyLimit: deps.bodyLimit,
    trustProxy: deps.trustProxy,
  });
  // strictPreflight off: a bare OPTIONS gets 204 rather than the plugin's own text/plain 400.
  await app.register(cors, { origin: '*', strictPreflight: false });
  await registerApiDocs(app, {
    title: 'triton-api',
    description:
      'Clients, value propositions, template-generation jobs and templates. Job progress is published as events on Redis (triton:jobs:all, triton:jobs:{job_id}).',
  });
  registerMetricsRoute(app, deps.registry, 'triton');
  const submitLimit = deps.rateLimit ? await registerSubmitRateLimit(app, deps.rateLimit) : {};
  registerHealthRoutes(app, 'triton-api', deps.readiness);

  app.get(
    '/clients/',
    {
      schema: {
        tags: ['clients'],
        summary: 'List clients, newest first',
        querystring: Page,
        response: { 200: ClientList, 400: ErrorBody },
      },
    },
    async (request) => ({ clients: await store.listClients(request.query) }),
  );

  app.post(
    '/clients/',
    {
      schema: {
        tags: ['clients'],
        summary: 'Create a client',
        body: CreateClientBody,
        response: { 201: Client, 400: ErrorBody },
      },
    },
    async (request, reply) => reply.code(201).send(await store.createClient(request.body)),
  );

  app.get(
    '/clients/:client_id',
    {
      schema: {
        tags: ['clients'],
        summary: 'Read a client',
        params: ClientParams,
        response: { 200: Client, ...errors },
      },
    },
    async (request) => {
      const client = await store.getClient(request.params.client_id);
      if (!client)
        throw new AppError('CLIENT_NOT_FOUND', `Client ${request.params.client_id} does not exist`);
      return client;
    },
  );

  app.post(
    '/clients/:client_id/value-propositions',
    {
      schema: {
        tags: ['clients'],
        summary: "Add a value proposition; an active one replaces the client's previous active one",
        params: ClientParams,
        body: CreateValuePropositionBody,
        response: { 201: ValueProposition, ...errors },
      },
    },
    async (request, reply) => {
      const vp = await store.createValueProposition(request.params.client_id, {
        content: request.body.content,
        is_active: request.body.is_active ?? true,
      });
      return reply.code(201).send(vp);
    },
  );

  app.get(
    '/clients/:client_id/value-propositions',
    {
      schema: {
        tags: ['clients'],
        summary: "List a client's value propositions",
        params: ClientParams,
        response: { 200: ValuePropositionList, ...errors },
      },
    },
    async (request) => {
      const id = request.params.client_id;
      if (!(await store.getClient(id)))
        throw new AppError('CLIENT_NOT_FOUND', `Client ${id} does not exist`);
      return { value_propositions: await store.listValuePropositions(id) };
    },
  );

  app.get(
    '/clients/:client_id/templates',
    {
      schema: {
        tags: ['templates'],
        summary: "List a client's templates, newest first",
        params: ClientParams,
        querystring: Page,
        response: { 200: TemplateList, ...errors },
      },
    },
    async (request) => {
      const id = request.params.client_id;
      if (!(await store.getClient(id)))
        throw new AppError('CLIENT_NOT_FOUND', `Client ${id} does not exist`);
      return { templates: await store.listClientTemplates(id, request.query) };
    },
  );

  app.post(
    '/clients/:client_id/generate-templates',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Start generating templates; progress is published as job events',
        params: ClientParams,
        response: { 202: JobAccepted, 400: ErrorBody, 429: ErrorBody, 503: ErrorBody },
      },
      config: submitLimit,
    },
    async (request, reply) =>
      reply.code(202).send(await submitGeneration(deps, request.params.client_id)),
  );

  app.get(
    '/jobs/:job_id',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's status document",
        params: JobParams,
        response: { 200: JobStatusDocument, ...errors },
      },
    },
    async (request) => {
      const doc = await store.jobStatusDocument(request.params.job_id);
      if (!doc) throw new AppError('JOB_NOT_FOUND', `Job ${request.params.job_id} does not exist`);
      return doc;
    },
  );

  app.get(
    '/jobs/:job_id/templates',
    {
      schema: {
        tags: ['templates'],
        summary: "A job's templates, in order",
        params: JobParams,
        response: { 200: TemplateList, ...errors },
      },
    },
    async (request) => {
      const id = request.params.job_id;
      if (!(await store.getJob(id)))
        throw new AppError('JOB_NOT_FOUND', `Job ${id} does not exist`);
      return { templates: await store.listJobTemplates(id) };
    },
  );

  app.get(
    '/templates/:template_id',
    {
      schema: {
        tags: ['templates'],
        summary: 'Read a template',
        params: TemplateParams,
        response: { 200: Template, ...errors },
      },
    },
    async (request) => {
      const t = await store.getTemplate(request.params.template_id);
      if (!t)
        throw new AppError(
          'TEMPLATE_NOT_FOUND',
          `Template ${request.params.template_id} does not exist`,
        );
      return t;
    },
  );

  return app;
}
