import {
  AppError,
  ErrorBody,
  JobAccepted,
  JobStatusDocument,
  TemplateList,
} from '../../../contract/index.js';
import { visibleTenant } from '../../../common/api-keys.js';
import type { HttpApp } from '../../../common/http.js';
import type { RateLimitKind, RouteLimit } from '../../../common/rate-limit.js';
import { requestCancellation, type RequestCancellationDeps } from '../../job-cancellation.js';
import { submitGeneration, type SubmitGenerationDeps } from '../submit-generation.js';
import { ClientParams, JobParams, readErrors } from './params.js';

/** Job submission, status documents and a job's templates, each caller's own. */
export function registerJobRoutes(
  app: HttpApp,
  deps: SubmitGenerationDeps & RequestCancellationDeps,
  /** Route config that rate-limits submissions and writes (empty: no limit). */
  limits: Partial<Record<RateLimitKind, RouteLimit>> = {},
): void {
  const { store } = deps;

  app.post(
    '/clients/:client_id/generate-templates',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Start generating templates; progress is published as job events',
        params: ClientParams,
        response: { 202: JobAccepted, 400: ErrorBody, 429: ErrorBody, 503: ErrorBody },
      },
      config: limits.submit ?? {},
    },
    async (request, reply) =>
      reply
        .code(202)
        .send(await submitGeneration(deps, request.params.client_id, request.principal)),
  );

  app.get(
    '/jobs/:job_id',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's status document",
        params: JobParams,
        response: { 200: JobStatusDocument, ...readErrors },
      },
    },
    async (request) => {
      const doc = await store.jobStatusDocument(
        request.params.job_id,
        visibleTenant(request.principal),
      );
      if (!doc) throw new AppError('JOB_NOT_FOUND', `Job ${request.params.job_id} does not exist`);
      return doc;
    },
  );

  app.post(
    '/jobs/:job_id/cancel',
    {
      schema: {
        tags: ['jobs'],
        summary:
          'Cancel a job: a queued one never starts, a running one stops within a second (its stored templates stay)',
        params: JobParams,
        response: { 202: JobStatusDocument, 409: ErrorBody, 429: ErrorBody, ...readErrors },
      },
      config: limits.write ?? {},
    },
    async (request, reply) =>
      reply
        .code(202)
        .send(
          await requestCancellation(deps, request.params.job_id, visibleTenant(request.principal)),
        ),
  );

  app.get(
    '/jobs/:job_id/templates',
    {
      schema: {
        tags: ['templates'],
        summary: "A job's templates, in order",
        params: JobParams,
        response: { 200: TemplateList, ...readErrors },
      },
    },
    async (request) => {
      const id = request.params.job_id;
      if (!(await store.getJob(id, visibleTenant(request.principal))))
        throw new AppError('JOB_NOT_FOUND', `Job ${id} does not exist`);
      return { templates: await store.listJobTemplates(id) };
    },
  );
}
