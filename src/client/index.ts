/** The typed mare-api client: plain HTTP calls, and watches that follow jobs over SSE. */
export * from './all-jobs-watch.js';
export * from './job-failed-error.js';
export * from './job-watch.js';
export * from './mare-api-error.js';
export * from './mare-client.js';
export * from './status-document-from-events.js';
export * from './template-texts.js';
export type { WatchOptions, WatchStatus, WatchStatusDetail } from './watch.js';
