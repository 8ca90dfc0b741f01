import { randomBytes } from 'node:crypto';
import type { PGlite } from '@electric-sql/pglite';
import { loadConfig, type Config } from '../../src/common/config.js';
import { createLogger } from '../../src/common/logger.js';
import { startMare, type MareService } from '../../src/mare/mare-service.js';
import { startTriton, type TritonService } from '../../src/triton/triton-service.js';
import { createTestDatabase } from './postgres.js';
import { startRedis } from './redis.js';

/** The Redis a test system runs on: a redis-server, or a cluster (its URL names one node). */
export interface TestRedis {
  readonly url: string;
  close(): Promise<void>;
}

export interface TestSystem {
  redis: TestRedis;
  config: Readonly<Config>;
  triton: TritonService;
  mare: MareService;
  tritonUrl: string;
  mareUrl: string;
  /** The Postgres database, when the system uses one (not PGlite). */
  databaseUrl: string | undefined;
  close(): Promise<void>;
}

export interface TestSystemOptions {
  /** Extra environment, as the parts would read it. */
  env?: Record<string, string>;
  /** Use this PGlite instead of a fresh database on the run's Postgres server. */
  pglite?: PGlite;
  /** Use this Redis (a server or a cluster) instead of starting one; the test closes it. */
  redis?: TestRedis;
  /** Run a worker inside triton-api. @defaultValue true */
  worker?: boolean;
}

/**
 * The whole system in this process: its own redis-server and database, triton-api with a
 * worker and mare-api on free ports. Jobs take ~100 ms unless GENERATION_STEP_MS says otherwise.
 */
export async function startSystem({
  env = {},
  pglite,
  redis: givenRedis,
  worker = true,
}: TestSystemOptions = {}): Promise<TestSystem> {
  const redis = givenRedis ?? (await startRedis());
  const database = pglite ? undefined : await createTestDatabase();
  const config = loadConfig({
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    LOG_FORMAT: 'json',
    REDIS_URL: redis.url,
    GENERATION_STEP_MS: '10',
    // Both APIs in one process, as `npm start` runs them: they share a secret made up for the run.
    GATEWAY_SECRET: randomBytes(24).toString('hex'),
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...env,
  });
  const logger = createLogger(config.common);
  const triton = await startTriton({
    common: config.common,
    triton: config.triton,
    logger,
    api: true,
    worker,
    port: 0,
    ...(pglite ? { pglite } : {}),
  });
  const tritonUrl = triton.url ?? '';
  const mare = await startMare({
    common: config.common,
    mare: { ...config.mare, tritonApiUrl: tritonUrl },
    logger,
    port: 0,
  });
  let closing: Promise<void> | undefined;
  return {
    redis,
    config,
    triton,
    mare,
    tritonUrl,
    mareUrl: mare.url,
    databaseUrl: database?.url,
    close() {
      closing ??= (async () => {
        await mare.close();
        await triton.close();
        if (!givenRedis) await redis.close();
        await database?.drop();
      })();
      return closing;
    },
  };
}

/** JSON over HTTP, for tests: status, headers and parsed body. */
export async function http<T = unknown>(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: T }> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed as T };
}

/** Creates a client with an active value proposition through triton-api; returns its id. */
export async function createClientWithProposition(
  tritonUrl: string,
  name = 'Test Client - Message Broker',
  industry = 'Healthcare',
  content = 'We reduce hospital readmissions by 30% through AI-powered care coordination',
): Promise<string> {
  const client = await http<{ id: string }>('POST', `${tritonUrl}/clients/`, { name, industry });
  if (client.status !== 201) throw new Error(`create client: ${client.status}`);
  const vp = await http('POST', `${tritonUrl}/clients/${client.body.id}/value-propositions`, {
    content,
    is_active: true,
  });
  if (vp.status !== 201) throw new Error(`create value proposition: ${vp.status}`);
  return client.body.id;
}
