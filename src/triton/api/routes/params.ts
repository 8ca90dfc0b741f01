import { z } from 'zod';
import { ErrorBody, UuidParam } from '../../../contract/index.js';

/** Path and query shapes shared by triton-api's routes. */
export const ClientParams = z.object({ client_id: UuidParam });
export const JobParams = z.object({ job_id: UuidParam });
export const TemplateParams = z.object({ template_id: UuidParam });
export const Page = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});
/** The error answers every route that reads a record may give. */
export const readErrors = { 400: ErrorBody, 404: ErrorBody };
