/** Why a template could not be written. */
export type GenerationErrorCode =
  /** The model answered 429 or 5xx, or could not be reached, as many times as allowed. */
  | 'MODEL_UNAVAILABLE'
  /** The model sent nothing for the request timeout. */
  | 'MODEL_TIMEOUT'
  /** The model refused the request (400, 401, 403, 404…): sending it again cannot help. */
  | 'MODEL_REJECTED'
  /** The model's answers were empty or could not be read. */
  | 'MODEL_BAD_ANSWER';

/**
 * A template the generator could not write. Its message is meant for the user who asked for the
 * job and names no secret. `retryable` says whether running the job again may succeed: false
 * for answers that only a change of configuration can fix (a bad key, an unknown model).
 */
export class GenerationError extends Error {
  override readonly name = 'GenerationError';

  constructor(
    message: string,
    readonly code: GenerationErrorCode,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}
