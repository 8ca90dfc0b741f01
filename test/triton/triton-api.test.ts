import { randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/common/config.js';
import { createLogger } from '../../src/common/logger.js';
import type { RedisServer } from '../../src/cli/redis-server.js';
import {
  ClientList,
  createKeyspace,
  decodeEvent,
  ErrorBody,
  historyEntryField,
  JobStatusDocument,
  NO_USAGE,
  type ErrorCode,
} from '../../src/contract/index.js';
import { startTriton, type TritonService } from '../../src/triton/triton-service.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startRedis } from '../helpers/redis.js';

/**
 * triton-api's routes through `app.inject`, against a real Redis and a real Postgres database.
 * No worker runs here, so a submitted job stays queued and its history holds only `job:queued`.
 */

const BODY_LIMIT = 4096;
const prefix = `test-${randomBytes(4).toString('hex')}:`;
const keys = createKeyspace(prefix);

let redisServer: RedisServer;
let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let service: TritonService;
let redis: Redis;
const statuses: number[] = [];

interface Reply {
  status: number;
  headers: Record<string, unknown>;
  body: unknown;
}

/** One request; every response is checked for what all responses promise. */
async function call(options: InjectOptions & { url: string }): Promise<Reply> {
  const app = service.app;
  if (!app) throw new Error('triton-api is not running');
  const res = await app.inject(options);
  statuses.push(res.statusCode);
  expect(res.statusCode, `${options.method} ${options.url} answered ${res.body}`).toBeLessThan(500);
  let body: unknown = res.body;
  if (String(res.headers['content-type']).startsWith('application/json')) body = res.json();
  return { status: res.statusCode, headers: res.headers, body };
}

function json(method: InjectOptions['method'], url: string, payload?: unknown): Promise<Reply> {
  return call({
    method,
    url,
    ...(payload === undefined
      ? {}
      : { payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } }),
  });
}

function expectError(reply: Reply, status: number, code: ErrorCode): void {
  expect(reply.status).toBe(status);
  expect(String(reply.headers['content-type'])).toMatch(/^application\/json/);
  const body = ErrorBody.parse(reply.body);
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
}

async function createClient(name = 'Test Client - Message Broker'): Promise<string> {
  const res = await json('POST', '/clients/', { name, industry: 'Healthcare' });
  expect(res.status).toBe(201);
  return (res.body as { id: string }).id;
}

beforeAll(async () => {
  redisServer = await startRedis();
  testDb = await createTestDatabase();
  const config = loadConfig({
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    LOG_FORMAT: 'json',
    REDIS_URL: redisServer.url,
    DATABASE_URL: testDb.url,
    REDIS_KEY_PREFIX: prefix,
    BODY_LIMIT_BYTES: String(BODY_LIMIT),
  });
  service = await startTriton({
    common: config.common,
    triton: config.triton,
    logger: createLogger(config.common),
    api: true,
    worker: false,
    port: 0,
  });
  redis = new Redis(redisServer.url);
});

afterAll(async () => {
  redis?.disconnect();
  await service?.close();
  await testDb?.drop();
  await redisServer?.close();
});

describe("the original system's paths", () => {
  it('creates a client with POST /clients/ and answers 201 with the record', async () => {
    const res = await json('POST', '/clients/', {
      name: 'Test Client - Message Broker',
      industry: 'Healthcare',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
      name: 'Test Client - Message Broker',
      industry: 'Healthcare',
    });
  });

  it('lists clients with GET /clients/ as {"clients": [...]}, newest first', async () => {
    const older = await createClient('older');
    const newer = await createClient('newer');
    const res = await json('GET', '/clients/');
    expect(res.status).toBe(200);
    const list = ClientList.parse(res.body);
    const ids = list.clients.map((c) => c.id);
    expect(ids.indexOf(newer)).toBeLessThan(ids.indexOf(older));
    expect(ids.indexOf(older)).toBeGreaterThan(-1);
  });

  it('pages GET /clients/ with limit and offset, and rejects a bad limit', async () => {
    await createClient();
    await createClient();
    const page = await json('GET', '/clients/?limit=1&offset=1');
    expect(page.status).toBe(200);
    expect(ClientList.parse(page.body).clients).toHaveLength(1);
    expectError(await json('GET', '/clients/?limit=0'), 400, 'VALIDATION_FAILED');
    expectError(await json('GET', '/clients/?limit=abc'), 400, 'VALIDATION_FAILED');
    expectError(await json('GET', '/clients/?offset=-1'), 400, 'VALIDATION_FAILED');
  });

  it('serves /clients without the trailing slash too', async () => {
    expect((await json('GET', '/clients')).status).toBe(200);
  });

  it('reads one client with GET /clients/{id}', async () => {
    const id = await createClient('readable');
    const res = await json('GET', `/clients/${id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, name: 'readable' });
  });

  it('adds a value proposition with POST /clients/{id}/value-propositions, active by default', async () => {
    const id = await createClient();
    const first = await json('POST', `/clients/${id}/value-propositions`, {
      content: 'We reduce hospital readmissions by 30% through AI-powered care coordination',
      is_active: true,
    });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ client_id: id, is_active: true });
    const second = await json('POST', `/clients/${id}/value-propositions`, { content: 'Newer' });
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ is_active: true, content: 'Newer' });
    const list = await json('GET', `/clients/${id}/value-propositions`);
    expect(list.status).toBe(200);
    const vps = (list.body as { value_propositions: { content: string; is_active: boolean }[] })
      .value_propositions;
    expect(vps.filter((vp) => vp.is_active).map((vp) => vp.content)).toEqual(['Newer']);
  });

  it('accepts POST /clients/{id}/generate-templates with 202, records the job and publishes job:queued as seq 1', async () => {
    const clientId = await createClient();
    const res = await call({ method: 'POST', url: `/clients/${clientId}/generate-templates` });
    expect(res.status).toBe(202);
    const { job_id: jobId, status } = res.body as { job_id: string; status: string };
    expect(status).toBe('queued');
    expect(jobId).toMatch(/^[0-9a-f-]{36}$/);

    const history = await redis.xrange(keys.jobHistoryKey(jobId), '-', '+');
    expect(history).toHaveLength(1);
    const [entryId, fields] = history[0] ?? ['', []];
    expect(entryId).toBe('0-1');
    const event = decodeEvent(historyEntryField(fields, 'e') ?? '');
    expect(event).toMatchObject({
      event_type: 'job:queued',
      job_id: jobId,
      client_id: clientId,
      status: 'queued',
      seq: 1,
    });

    const job = await service.queue.getJob(jobId);
    expect(job?.data).toEqual({ job_id: jobId, client_id: clientId });

    const doc = await json('GET', `/jobs/${jobId}`);
    expect(doc.status).toBe(200);
    expect(JobStatusDocument.parse(doc.body)).toEqual({
      job_id: jobId,
      client_id: clientId,
      status: 'queued',
      progress: 0,
      template_ids: [],
      template_count: 0,
      generation_duration_ms: null,
      error_message: null,
      completed_at: null,
      usage: NO_USAGE,
    });
  });

  it("accepts generate-templates with Content-Type: application/json and an empty body (the guide's curl)", async () => {
    const clientId = await createClient();
    const res = await call({
      method: 'POST',
      url: `/clients/${clientId}/generate-templates`,
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: 'queued' });
  });

  it('accepts a job for a client that does not exist (it fails later, in the worker)', async () => {
    const res = await call({
      method: 'POST',
      url: '/clients/00000000-0000-0000-0000-000000000000/generate-templates',
    });
    expect(res.status).toBe(202);
  });

  it('normalises an upper-case id in a path to lower case', async () => {
    const clientId = await createClient();
    const accepted = await call({
      method: 'POST',
      url: `/clients/${clientId.toUpperCase()}/generate-templates`,
    });
    expect(accepted.status).toBe(202);
    const jobId = (accepted.body as { job_id: string }).job_id;
    const doc = await json('GET', `/jobs/${jobId.toUpperCase()}`);
    expect(doc.status).toBe(200);
    expect(doc.body).toMatchObject({ job_id: jobId, client_id: clientId });
  });

  it('lists the templates of a queued job as empty', async () => {
    const clientId = await createClient();
    const accepted = await call({ method: 'POST', url: `/clients/${clientId}/generate-templates` });
    const jobId = (accepted.body as { job_id: string }).job_id;
    const res = await json('GET', `/jobs/${jobId}/templates`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ templates: [] });
    expect((await json('GET', `/clients/${clientId}/templates`)).body).toEqual({ templates: [] });
  });
});

describe('cancellation', () => {
  it('cancels a queued job with 202: it leaves the queue, ends as cancelled and tells watchers', async () => {
    const clientId = await createClient();
    const submitted = await call({
      method: 'POST',
      url: `/clients/${clientId}/generate-templates`,
    });
    const jobId = (submitted.body as { job_id: string }).job_id;
    const listener = new Redis(redisServer.url);
    const heard: string[] = [];
    listener.on('message', (_channel: string, message: string) => heard.push(message));
    await listener.subscribe(keys.cancelChannel);
    try {
      const res = await json('POST', `/jobs/${jobId}/cancel`);
      expect(res.status).toBe(202);
      expect(JobStatusDocument.parse(res.body)).toMatchObject({
        job_id: jobId,
        status: 'cancelled',
        progress: null,
        template_ids: [],
        error_message: null,
      });
      expect(await service.queue.getJob(jobId)).toBeUndefined();
      // Every worker, wherever it runs, hears of it and finds the key set.
      expect(await redis.exists(keys.jobCancelKey(jobId))).toBe(1);
      await expect.poll(() => heard).toEqual([jobId]);
      const events = (await redis.xrange(keys.jobHistoryKey(jobId), '-', '+')).map(([, f]) =>
        decodeEvent(historyEntryField(f, 'e') ?? ''),
      );
      expect(events.map((e) => [e.event_type, e.seq])).toEqual([
        ['job:queued', 1],
        ['job:cancelled', 2],
      ]);
      expect(events[1]).toMatchObject({ status: 'cancelled', template_count: 0 });
    } finally {
      listener.disconnect();
    }
  });

  it('answers a second cancel, of a job that already ended, with 409 JOB_FINISHED', async () => {
    const clientId = await createClient();
    const submitted = await call({
      method: 'POST',
      url: `/clients/${clientId}/generate-templates`,
    });
    const jobId = (submitted.body as { job_id: string }).job_id;
    expect((await json('POST', `/jobs/${jobId}/cancel`)).status).toBe(202);
    const again = await json('POST', `/jobs/${jobId}/cancel`);
    expectError(again, 409, 'JOB_FINISHED');
    expect((again.body as { error: { message: string } }).error.message).toContain('cancelled');
    // Still exactly one terminal event.
    expect(await redis.xlen(keys.jobHistoryKey(jobId))).toBe(2);
  });

  it('answers a cancel of an unknown job with 404 and of a malformed id with 400', async () => {
    expectError(await json('POST', `/jobs/${randomUUID()}/cancel`), 404, 'JOB_NOT_FOUND');
    expectError(await json('POST', '/jobs/not-a-uuid/cancel'), 400, 'INVALID_ID');
  });
});

describe('errors', () => {
  it.each([
    ['GET', '/clients/abc'],
    ['GET', '/clients/abc/value-propositions'],
    ['GET', '/clients/abc/templates'],
    ['POST', '/clients/abc/generate-templates'],
    ['GET', '/jobs/abc-123-uuid'],
    ['GET', '/jobs/3f2b8c1e4d5a4b6c9e7f0a1b2c3d4e5f'],
    ['GET', `/jobs/${'f'.repeat(36)}`],
    ['GET', '/jobs/abc/templates'],
    ['GET', '/templates/not-a-uuid'],
    ['GET', `/jobs/${encodeURIComponent("1' or '1'='1")}`],
  ] as const)('answers %s %s (a malformed id) with 400 INVALID_ID', async (method, url) => {
    expectError(await call({ method, url }), 400, 'INVALID_ID');
  });

  it('answers a malformed id on a POST with a body with 400 INVALID_ID', async () => {
    const res = await json('POST', '/clients/abc/value-propositions', { content: 'x' });
    expectError(res, 400, 'INVALID_ID');
  });

  it.each([
    ['GET', () => `/clients/${randomUUID()}`, 'CLIENT_NOT_FOUND'],
    ['GET', () => `/clients/${randomUUID()}/value-propositions`, 'CLIENT_NOT_FOUND'],
    ['GET', () => `/clients/${randomUUID()}/templates`, 'CLIENT_NOT_FOUND'],
    ['GET', () => `/jobs/${randomUUID()}`, 'JOB_NOT_FOUND'],
    ['GET', () => `/jobs/${randomUUID()}/templates`, 'JOB_NOT_FOUND'],
    ['GET', () => `/templates/${randomUUID()}`, 'TEMPLATE_NOT_FOUND'],
  ] as const)('answers %s of an unknown record with 404 %s', async (method, url, code) => {
    expectError(await call({ method, url: url() }), 404, code);
  });

  it('answers a value proposition for an unknown client with 404 CLIENT_NOT_FOUND', async () => {
    const res = await json('POST', `/clients/${randomUUID()}/value-propositions`, {
      content: 'x',
    });
    expectError(res, 404, 'CLIENT_NOT_FOUND');
  });

  it.each([
    ['a missing name', { industry: 'Healthcare' }],
    ['a missing industry', { name: 'Acme' }],
    ['an extra field', { name: 'Acme', industry: 'Healthcare', admin: true }],
    ['a name of the wrong type', { name: 42, industry: 'Healthcare' }],
    ['a null name', { name: null, industry: 'Healthcare' }],
    ['an empty name', { name: '', industry: 'Healthcare' }],
    ['a blank industry', { name: 'Acme', industry: '   ' }],
    ['a NUL character', { name: 'Ac\u0000me', industry: 'Healthcare' }],
    ['a name over 200 characters', { name: 'x'.repeat(201), industry: 'Healthcare' }],
    ['an array body', [{ name: 'Acme', industry: 'Healthcare' }]],
    ['a null body', null],
    ['a string body', 'Acme'],
  ])('answers POST /clients/ with %s with 400 VALIDATION_FAILED', async (_what, body) => {
    expectError(await json('POST', '/clients/', body), 400, 'VALIDATION_FAILED');
  });

  it('answers POST /clients/ with an empty JSON body with 400 VALIDATION_FAILED', async () => {
    const res = await call({
      method: 'POST',
      url: '/clients/',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expectError(res, 400, 'VALIDATION_FAILED');
  });

  it('names the offending field in the validation message', async () => {
    const res = await json('POST', '/clients/', { name: 'Acme', industry: 7 });
    expect((res.body as ErrorBody).error.message).toContain('industry');
  });

  it.each([
    ['a missing content', { is_active: true }],
    ['an is_active that is a string', { content: 'x', is_active: 'yes' }],
    ['an empty content', { content: '' }],
    ['a NUL character', { content: 'x\u0000' }],
    ['an extra field', { content: 'x', client_id: randomUUID() }],
  ])(
    'answers POST /clients/{id}/value-propositions with %s with 400 VALIDATION_FAILED',
    async (_what, body) => {
      const id = await createClient();
      expectError(
        await json('POST', `/clients/${id}/value-propositions`, body),
        400,
        'VALIDATION_FAILED',
      );
    },
  );

  it.each([
    ['text/plain', 'name=Acme'],
    ['application/x-www-form-urlencoded', 'name=Acme&industry=Healthcare'],
    ['multipart/form-data; boundary=x', '--x\r\n\r\nAcme\r\n--x--'],
    ['application/xml', '<client/>'],
  ])('answers a %s body with 415 UNSUPPORTED_MEDIA_TYPE', async (type, payload) => {
    const res = await call({
      method: 'POST',
      url: '/clients/',
      headers: { 'content-type': type },
      payload,
    });
    expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers a body over BODY_LIMIT_BYTES with 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await json('POST', '/clients/', {
      name: 'x'.repeat(BODY_LIMIT),
      industry: 'Healthcare',
    });
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('checks a body just under BODY_LIMIT_BYTES as usual', async () => {
    const res = await json('POST', '/clients/', {
      name: 'x'.repeat(BODY_LIMIT - 100),
      industry: 'Healthcare',
    });
    expectError(res, 400, 'VALIDATION_FAILED');
  });

  it.each([
    ['truncated JSON', '{"name": "Acme", "industry":'],
    ['single quotes', "{'name': 'Acme', 'industry': 'Healthcare'}"],
    ['a trailing comma', '{"name": "Acme", "industry": "Healthcare",}'],
    ['a __proto__ key', '{"__proto__": {"admin": true}, "name": "Acme", "industry": "Health"}'],
  ])('answers invalid JSON (%s) with 400 VALIDATION_FAILED', async (_what, payload) => {
    const res = await call({
      method: 'POST',
      url: '/clients/',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expectError(res, 400, 'VALIDATION_FAILED');
  });

  it.each([
    ['GET', '/nope'],
    ['GET', '/v1/triton/jobs/3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f'],
    ['POST', '/jobs/'],
  ] as const)('answers %s %s (no such route) with 404 ROUTE_NOT_FOUND', async (method, url) => {
    expectError(await call({ method, url }), 404, 'ROUTE_NOT_FOUND');
  });

  it('answers a method a route does not serve with 405 METHOD_NOT_ALLOWED and Allow', async () => {
    const res = await call({ method: 'DELETE', url: '/clients/' });
    expectError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(res.headers.allow).toBe('GET, HEAD, POST, OPTIONS');
  });

  it('never answers arbitrary JSON bodies with a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        const res = await json('POST', '/clients/', value);
        expect([201, 400, 413]).toContain(res.status);
      }),
      { numRuns: 60 },
    );
  });

  it('never answers arbitrary path segments with a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 60 }), async (segment) => {
        const res = await call({ method: 'GET', url: `/jobs/${encodeURIComponent(segment)}` });
        expect([400, 404]).toContain(res.status);
      }),
      { numRuns: 60 },
    );
  });
});

describe('every response', () => {
  it('was below 500', () => {
    expect(statuses.length).toBeGreaterThan(50);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
  });
});
