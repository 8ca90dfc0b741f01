import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import type { HttpApp } from './http.js';

/** What the OpenAPI document says about the API as a whole. */
export interface ApiDocsOptions {
  /** The API's name (`info.title`). */
  title: string;
  /** What the API is for, in a sentence or two (`info.description`). */
  description: string;
  /** @defaultValue '1.0.0' */
  version?: string;
}

/**
 * OpenAPI for every route registered after this, generated from the same zod schemas that
 * validate requests: the document at `/docs/json` (and `/docs/yaml`), a browsable page at `/docs`.
 * Must be registered before the routes it documents.
 */
export async function registerApiDocs(
  app: HttpApp,
  { title, description, version = '1.0.0' }: ApiDocsOptions,
): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title, description, version },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
}
