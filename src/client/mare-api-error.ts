import { ERROR_CODES, ErrorBody, type ErrorCode } from '../contract/index.js';

/**
 * Codes a {@link MareApiError} can carry: the server's own stable codes, plus two for failures
 * that never reached (or never came back from) mare-api in a readable form.
 * - `NETWORK_ERROR`: no HTTP response at all (connection refused, reset, DNS, timeout).
 * - `BAD_RESPONSE`: a response that is not the contract's (an HTML error page from a proxy,
 *   a body that fails validation).
 */
export type MareClientErrorCode = ErrorCode | 'NETWORK_ERROR' | 'BAD_RESPONSE';

const SERVER_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * An unsuccessful call to mare-api. Branch on {@link MareApiError.code}, never on the message:
 * codes are stable, messages are for people.
 */
export class MareApiError extends Error {
  override readonly name = 'MareApiError';

  constructor(
    /** The server's `error.code`, or a client-side code when there was no usable answer. */
    readonly code: MareClientErrorCode,
    message: string,
    /** HTTP status of the response; 0 when there was none. */
    readonly status: number,
    /** Seconds the server asked us to wait (`Retry-After`), when it said. */
    readonly retryAfterSeconds?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /**
   * True when trying again later may succeed: no response, a timeout, an overloaded or
   * restarting gateway. A 4xx other than 429 means the request itself is wrong.
   */
  get retryable(): boolean {
    if (this.status === 0) return true;
    return this.status === 429 || this.status >= 500;
  }

  /** Builds the error for a non-2xx response from its `{"error": {"code", "message"}}` body. */
  static async fromResponse(response: Response): Promise<MareApiError> {
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
    let text = '';
    try {
      text = await response.text();
    } catch {
      // The body was cut off: the status alone still says what happened.
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = ErrorBody.safeParse(json);
    if (parsed.success && SERVER_CODES.has(parsed.data.error.code)) {
      return new MareApiError(
        parsed.data.error.code,
        parsed.data.error.message,
        response.status,
        retryAfter,
      );
    }
    return new MareApiError(
      'BAD_RESPONSE',
      `mare-api answered ${response.status} ${response.statusText} without a JSON error body`,
      response.status,
      retryAfter,
    );
  }
}

/** `Retry-After` in seconds (only the delta-seconds form; mare-api never sends a date). */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
