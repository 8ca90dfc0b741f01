import type { TestProject } from 'vitest/node';
import { PostgresServer } from './postgres-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A Postgres server for this test run (each file creates its own database on it). */
    postgresUrl: string;
  }
}

/**
 * Starts one real Postgres server for the whole run (initdb takes seconds; a database per file
 * takes milliseconds), unless TEST_DATABASE_URL names one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.TEST_DATABASE_URL;
  if (given) {
    project.provide('postgresUrl', given);
    return async () => {};
  }
  const server = await PostgresServer.start();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
