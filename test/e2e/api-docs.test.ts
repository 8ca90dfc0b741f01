import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSystem, type TestSystem } from '../helpers/system.js';

/** OpenAPI for both APIs, generated from the zod schemas that validate the requests. */

type OpenApi = {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: {
          content: Record<
            string,
            { schema: { required?: string[]; properties?: Record<string, unknown> } }
          >;
        };
        responses: Record<string, unknown>;
        parameters?: Array<{ name: string; in: string }>;
      }
    >
  >;
};

let system: TestSystem;
beforeAll(async () => {
  system = await startSystem();
});
afterAll(() => system?.close());

it('triton-api documents the original system’s paths, with request bodies from the validating schemas', async () => {
  const doc = (await (await fetch(`${system.tritonUrl}/docs/json`)).json()) as OpenApi;
  expect(doc.openapi).toMatch(/^3\./);
  for (const path of [
    '/clients/',
    '/clients/{client_id}/value-propositions',
    '/clients/{client_id}/generate-templates',
    '/jobs/{job_id}',
  ]) {
    expect(doc.paths[path], path).toBeDefined();
  }
  const createClient =
    doc.paths['/clients/']?.post?.requestBody?.content['application/json']?.schema;
  expect(createClient?.required).toEqual(['name', 'industry']);
  expect(
    Object.keys(doc.paths['/clients/{client_id}/generate-templates']?.post?.responses ?? {}),
  ).toEqual(expect.arrayContaining(['202', '400', '429', '503']));
  expect(doc.paths['/metrics']).toBeUndefined();
});

it('mare-api documents submissions, lookups and both SSE streams, and serves a browsable page at /docs', async () => {
  const doc = (await (await fetch(`${system.mareUrl}/docs/json`)).json()) as OpenApi;
  for (const path of [
    '/v1/triton/clients/{client_id}/generate-templates',
    '/v1/triton/jobs/{job_id}',
    '/v1/triton/jobs/{job_id}/subscribe',
    '/v1/triton/events',
  ]) {
    expect(doc.paths[path], path).toBeDefined();
  }
  const subscribe = doc.paths['/v1/triton/jobs/{job_id}/subscribe']?.get;
  expect(subscribe?.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual(
    expect.arrayContaining(['path:job_id', 'query:last_event_id']),
  );
  const page = await fetch(`${system.mareUrl}/docs`, { redirect: 'follow' });
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/text\/html/);
});
