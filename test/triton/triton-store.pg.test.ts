import { afterAll, beforeAll, describe } from 'vitest';
import { openDatabase, type TritonDatabase } from '../../src/triton/db/database.js';
import { TritonStore } from '../../src/triton/db/triton-store.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { captureLogger, describeStoreCases, type StoreUnderTest } from './store-cases.js';

/** TritonStore on a real Postgres server, in a database of this file's own. */

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let database: TritonDatabase;
let subject: StoreUnderTest;

beforeAll(async () => {
  testDb = await createTestDatabase();
  const { logger, messages } = captureLogger();
  database = await openDatabase({ databaseUrl: testDb.url }, logger);
  subject = {
    store: new TritonStore(database.db),
    database,
    openMessages: messages,
    openAgain: (again) => openDatabase({ databaseUrl: testDb.url, poolSize: 2 }, again),
  };
});

afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

describe('TritonStore on Postgres', () => {
  describeStoreCases(() => subject);
});
