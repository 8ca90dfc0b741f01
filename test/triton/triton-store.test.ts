import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe } from 'vitest';
import { openDatabase, type TritonDatabase } from '../../src/triton/db/database.js';
import { TritonStore } from '../../src/triton/db/triton-store.js';
import { captureLogger, describeStoreCases, type StoreUnderTest } from './store-cases.js';

/** TritonStore on embedded PGlite (in memory), as `npm start` runs it without DATABASE_URL. */

let pglite: PGlite;
let database: TritonDatabase;
let subject: StoreUnderTest;

beforeAll(async () => {
  // Starting PGlite takes seconds: one instance for the whole file.
  pglite = await PGlite.create();
  const { logger, messages } = captureLogger();
  database = await openDatabase({ pglite }, logger);
  subject = {
    store: new TritonStore(database.db),
    database,
    openMessages: messages,
    openAgain: (again) => openDatabase({ pglite }, again),
  };
});

afterAll(async () => {
  await database?.close();
  await pglite?.close();
});

describe('TritonStore on PGlite', () => {
  describeStoreCases(() => subject);
});
