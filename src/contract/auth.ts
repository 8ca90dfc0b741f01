import { z } from 'zod';
import { Uuid } from './ids.js';

/**
 * What clients and gateways need to know of access control: tenant names, the bodies of the
 * stream-token and auth-status endpoints, and the query parameter a stream token travels in.
 */

/**
 * A tenant's name: lower-case letters, digits and `.` `_` `-`, starting with a letter or digit,
 * at most 63 characters. Safe in a header, a log line, a JSON string and a URL as it is.
 */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A tenant's name (see {@link TENANT_PATTERN}). */
export const TenantName = z
  .string()
  .regex(
    TENANT_PATTERN,
    'must be 1 to 63 lower-case letters, digits, dots, underscores or hyphens, starting with a letter or digit',
  );

/**
 * The query parameter that carries a stream token on the SSE routes, so that a browser's
 * `EventSource`, which cannot send headers, can open them.
 */
export const STREAM_TOKEN_PARAM = 'token';

/** Body of `POST /v1/triton/stream-tokens`: one job's stream, or (`{}`) the tenant's all-jobs stream. */
export const StreamTokenRequest = z.strictObject({ job_id: Uuid.optional() });
export type StreamTokenRequest = z.infer<typeof StreamTokenRequest>;

/** A stream token, and until when it opens streams. */
export const StreamTokenGrant = z.object({
  stream_token: z.string(),
  expires_at: z.iso.datetime({ offset: true }),
  /** The job whose stream it opens; absent for the all-jobs stream. */
  job_id: Uuid.optional(),
});
export type StreamTokenGrant = z.infer<typeof StreamTokenGrant>;

/** `GET /v1/triton/auth`: whether keys are required, and whose key was sent, if any. */
export const AuthStatus = z.object({
  auth: z.boolean(),
  tenant: z.string().optional(),
  admin: z.boolean().optional(),
});
export type AuthStatus = z.infer<typeof AuthStatus>;
