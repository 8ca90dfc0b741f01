import type { JobStatusDocument } from '../contract/index.js';

/** What a job watch reports through `onError` when the job itself failed (`job:failed`). */
export class JobFailedError extends Error {
  override readonly name = 'JobFailedError';

  constructor(
    /** The failed job's final status document; `error_message` says why. */
    readonly result: JobStatusDocument,
  ) {
    super(result.error_message ?? `Job ${result.job_id} failed`);
  }
}
