export * from './errors.js';
export * from './events.js';
export * from './history.js';
export * from './ids.js';
export * from './job-status.js';
export * from './keyspace.js';
export * from './resources.js';
export * from './sse.js';
