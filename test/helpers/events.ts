/**
 * A job event as a test reads it off the wire (SSE `data:` or a Pub/Sub message): the fields
 * tests look at, typed loosely, since checking the payload's shape is the contract tests' job.
 */
export type EventData = Record<string, unknown> & {
  event_type: string;
  seq: number;
  job_id: string;
  status: string;
  progress?: number;
  error_message?: string;
};
