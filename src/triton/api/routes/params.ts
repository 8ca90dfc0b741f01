import { z } from 'zod';
import { ErrorBody, UuidParam } from '../../../contract/index.js';

/** Path of a client's routes: `client_id`, a UUID in any case, lower-cased. */
export const ClientParams = z.object({ client_id: UuidParam });
/** Path of a job's routes: `job_id`, a UUID in any case, lower-cased. */
export const JobParams = z.object({ job_id: UuidParam });
/** Path of a template's route: `template_id`, a UUID in any case, lower-cased. */
export const TemplateParams = z.object({ template_id: UuidParam });
/** Query of a list: `limit` (1–1000, default 100) records from `offset` (default 0). */
export const Page = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});
/** The error answers every route that reads a record may give. */
export const readErrors = { 400: ErrorBody, 404: ErrorBody };
