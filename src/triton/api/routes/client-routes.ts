import {
  AppError,
  Client,
  ClientList,
  CreateClientBody,
  CreateValuePropositionBody,
  ErrorBody,
  TemplateList,
  ValueProposition,
  ValuePropositionList,
} from '../../../contract/index.js';
import { owningTenant, visibleTenant } from '../../../common/api-keys.js';
import type { HttpApp } from '../../../common/http.js';
import type { RouteLimit } from '../../../common/rate-limit.js';
import type { TritonStore } from '../../db/triton-store.js';
import { ClientParams, Page, readErrors } from './params.js';

/**
 * Clients, their value propositions and their templates: each caller sees and adds to its own
 * tenant's (every tenant's for an admin, or with auth off).
 */
export function registerClientRoutes(
  app: HttpApp,
  { store }: { store: TritonStore },
  /** Route config that rate-limits writes (empty: no limit). */
  writeLimit: RouteLimit = {},
): void {
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
    async (request) => ({
      clients: await store.listClients(request.query, visibleTenant(request.principal)),
    }),
  );

  app.post(
    '/clients/',
    {
      schema: {
        tags: ['clients'],
        summary: 'Create a client',
        body: CreateClientBody,
        response: { 201: Client, 400: ErrorBody, 429: ErrorBody },
      },
      config: writeLimit,
    },
    async (request, reply) =>
      reply.code(201).send(await store.createClient(request.body, owningTenant(request.principal))),
  );

  app.get(
    '/clients/:client_id',
    {
      schema: {
        tags: ['clients'],
        summary: 'Read a client',
        params: ClientParams,
        response: { 200: Client, ...readErrors },
      },
    },
    async (request) => {
      const client = await store.getClient(
        request.params.client_id,
        visibleTenant(request.principal),
      );
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
        response: { 201: ValueProposition, 429: ErrorBody, ...readErrors },
      },
      config: writeLimit,
    },
    async (request, reply) => {
      const vp = await store.createValueProposition(
        request.params.client_id,
        { content: request.body.content, is_active: request.body.is_active ?? true },
        visibleTenant(request.principal),
      );
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
        response: { 200: ValuePropositionList, ...readErrors },
      },
    },
    async (request) => {
      const id = request.params.client_id;
      if (!(await store.getClient(id, visibleTenant(request.principal))))
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
        response: { 200: TemplateList, ...readErrors },
      },
    },
    async (request) => {
      const id = request.params.client_id;
      if (!(await store.getClient(id, visibleTenant(request.principal))))
        throw new AppError('CLIENT_NOT_FOUND', `Client ${id} does not exist`);
      return { templates: await store.listClientTemplates(id, request.query) };
    },
  );
}
