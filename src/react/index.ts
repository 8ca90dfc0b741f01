/** React bindings of the mare-api client: follow a job from a component. */
export * from './use-job.js';
