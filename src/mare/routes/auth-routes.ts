import {
  AuthStatus,
  ErrorBody,
  StreamTokenGrant,
  StreamTokenRequest,
} from '../../contract/index.js';
import type { HttpApp } from '../../common/http.js';
import type { MareContext } from '../mare-context.js';

/**
 * `GET /v1/triton/auth` (whether keys are needed, and whose key was sent: what the dashboard
 * asks first) and, with auth on, `POST /v1/triton/stream-tokens`.
 */
export function registerAuthRoutes(app: HttpApp, ctx: MareContext): void {
  const { lookup, streamTokens } = ctx;

  app.get(
    '/v1/triton/auth',
    {
      config: { access: 'optional' },
      schema: {
        tags: ['auth'],
        summary: 'Whether API keys are required, and whose key this request sent (if any)',
        response: { 200: AuthStatus, 401: ErrorBody },
      },
    },
    (request) => {
      const { principal } = request;
      if (!streamTokens) return { auth: false };
      return principal?.tenant
        ? { auth: true, tenant: principal.tenant, admin: principal.admin }
        : { auth: true };
    },
  );

  if (!streamTokens) return;

  app.post(
    '/v1/triton/stream-tokens',
    {
      schema: {
        tags: ['auth'],
        summary:
          "A stream token: `{job_id}` for that job's stream, `{}` for the all-jobs stream (your own jobs); pass it as ?token= (EventSource sends no headers)",
        body: StreamTokenRequest.nullish(),
        response: {
          200: StreamTokenGrant,
          400: ErrorBody,
          401: ErrorBody,
          404: ErrorBody,
          502: ErrorBody,
          503: ErrorBody,
          504: ErrorBody,
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (!principal) throw new Error('stream-tokens reached without a principal');
      const jobId = request.body?.job_id?.toLowerCase();
      // A job the caller may not see is JOB_NOT_FOUND, exactly as a lookup says.
      if (jobId !== undefined) await lookup.json(jobId, principal);
      const { token, expiresAt } = await streamTokens.issue(principal, jobId);
      return {
        stream_token: token,
        expires_at: expiresAt.toISOString(),
        ...(jobId === undefined ? {} : { job_id: jobId }),
      };
    },
  );
}
