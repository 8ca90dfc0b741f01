import { z } from 'zod';

/** Stable error codes. Clients branch on these; only the HTTP edge maps them to statuses. */
export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'INVALID_ID',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'HEADERS_TOO_LARGE',
  'REQUEST_TIMEOUT',
  'ROUTE_NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'CLIENT_NOT_FOUND',
  'JOB_NOT_FOUND',
  'TEMPLATE_NOT_FOUND',
  'JOB_FINISHED',
  'RATE_LIMITED',
  'TOO_MANY_CONNECTIONS',
  'UPSTREAM_UNAVAILABLE',
  'UPSTREAM_TIMEOUT',
  'UPSTREAM_ERROR',
  'NOT_READY',
  'SHUTTING_DOWN',
  'INTERNAL',
] as const;
/** One stable error code (docs/contract.md lists each with its HTTP status). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Every error response body: `{"error": {"code", "message"}}`. */
export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES),
    message: z.string(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** An error with a stable code, raised anywhere and turned into a response at the edge. */
export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds a client should wait before retrying, where that is known. */
    readonly retryAfterSeconds?: number,
    /** What went wrong underneath, for logs; never shown to clients. */
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
