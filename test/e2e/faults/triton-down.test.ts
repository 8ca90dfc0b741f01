import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorBody } from '../../../src/contract/index.js';
import { loadConfig } from '../../../src/common/config.js';
import { createLogger } from '../../../src/common/logger.js';
import { startMare, type MareService } from '../../../src/mare/mare-service.js';
import { startTriton, type TritonService } from '../../../src/triton/triton-service.js';
import { openSse, payloads, type SseConnection } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import type { EventData as Event } from '../../helpers/events.js';

/**
 * Drill 5: triton-api goes away. mare-api keeps answering what it can without it (finished
 * jobs from its cache, event history from Redis) and answers everything else at once with a
 * clear 503 and a Retry-After, instead of making clients wait. A triton-api that accepts
 * connections and never answers (hung, not down) costs each request at most
 * TRITON_REQUEST_TIMEOUT_MS, then a 504.
 */

const REQUEST_TIMEOUT_MS = 5000;
/** What "at once" means for an unreachable upstream on this (shared, slow) machine. */
const FAST_MS = 1000;
const UNKNOWN_JOB = '9b2f4c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f';

let system: TestSystem | undefined;
let revived: TritonService | undefined;
let gateway: MareService | undefined;
let hung: Server | undefined;
const hungSockets = new Set<Socket>();
const streams: SseConnection[] = [];

afterAll(async () => {
  for (const sse of streams) sse.close();
  await gateway?.close();
  for (const socket of hungSockets) socket.destroy();
  await new Promise<void>((resolve) => (hung ? hung.close(() => resolve()) : resolve()));
  await revived?.close();
  await system?.close();
});

/** A request that fails the test instead of hanging it; returns the time it took. */
async function timed<T = unknown>(method: string, url: string, body?: unknown) {
  const started = performance.now();
  const res = await Promise.race([
    http<T>(method, url, body),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${method} ${url} hung`)), 10_000).unref(),
    ),
  ]);
  return { ...res, ms: performance.now() - started };
}

function expectErrorCode(body: unknown, code: string): void {
  const parsed = ErrorBody.safeParse(body);
  expect(parsed.success, JSON.stringify(body)).toBe(true);
  expect(parsed.data?.error.code).toBe(code);
}

function retryAfter(headers: Headers): number {
  return Number(headers.get('retry-after'));
}

let clientId = '';
/** Finished and cached before triton-api goes away. */
let finishedJob = '';
/** Accepted, never run (no worker), so never cached. */
let queuedJob = '';

beforeAll(async () => {
  system = await startSystem({
    env: {
      TRITON_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
    },
  });
  const sys = system;
  clientId = await createClientWithProposition(sys.tritonUrl);

  const finished = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  finishedJob = finished.body.job_id;
  const watch = await openSse(`${sys.mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`);
  await watch.ended;
  expect(payloads<Event>(watch).at(-1)?.status).toBe('completed');
  await waitFor('the finished job to be cached', async () => {
    const res = await http('GET', `${sys.mareUrl}/v1/triton/jobs/${finishedJob}`);
    return res.headers.get('x-cache') === 'hit';
  });

  await sys.triton.worker?.close();
  const queued = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(queued.status).toBe(202);
  queuedJob = queued.body.job_id;
});

describe('triton-api down', () => {
  beforeAll(async () => {
    await system!.triton.app?.close();
  });

  it('still answers lookups of finished jobs from the cache', async () => {
    const sys = system!;
    for (let i = 0; i < 20; i++) {
      const res = await timed<{ status: string; template_count: number }>(
        'GET',
        `${sys.mareUrl}/v1/triton/jobs/${finishedJob}`,
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('hit');
      expect(res.body).toMatchObject({ status: 'completed', template_count: 7 });
    }
  });

  it('answers uncached lookups at once with 503 UPSTREAM_UNAVAILABLE and a Retry-After', async () => {
    const sys = system!;
    const times: number[] = [];
    for (const jobId of [queuedJob, UNKNOWN_JOB, queuedJob.toUpperCase()]) {
      for (const path of [`/v1/triton/jobs/${jobId}`, `/v1/triton/jobs/${jobId}/templates`]) {
        const res = await timed('GET', `${sys.mareUrl}${path}`);
        expect(res.status, path).toBe(503);
        expectErrorCode(res.body, 'UPSTREAM_UNAVAILABLE');
        expect(retryAfter(res.headers)).toBeGreaterThanOrEqual(1);
        times.push(res.ms);
      }
    }
    // Far below TRITON_REQUEST_TIMEOUT_MS: a refused connection is not waited out.
    expect(Math.max(...times)).toBeLessThan(FAST_MS);
  });

  it('refuses submissions and writes through it with 503 UPSTREAM_UNAVAILABLE', async () => {
    const sys = system!;
    const submit = await timed(
      'POST',
      `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
    );
    expect(submit.status).toBe(503);
    expectErrorCode(submit.body, 'UPSTREAM_UNAVAILABLE');
    expect(retryAfter(submit.headers)).toBeGreaterThanOrEqual(1);
    expect(submit.ms).toBeLessThan(FAST_MS);

    const create = await timed('POST', `${sys.mareUrl}/v1/triton/clients`, {
      name: 'Acme',
      industry: 'Retail',
    });
    expect(create.status).toBe(503);
    expectErrorCode(create.body, 'UPSTREAM_UNAVAILABLE');
  });

  it('replays a finished job’s history over SSE without triton-api, then closes', async () => {
    const sys = system!;
    const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${finishedJob}/subscribe`);
    streams.push(sse);
    expect(sse.status).toBe(200);
    await sse.ended;
    const events = payloads<Event>(sse);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', job_id: finishedJob });
    expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
  });

  it('streams an unfinished job from its history and keeps the stream open', async () => {
    const sys = system!;
    const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${queuedJob}/subscribe`);
    streams.push(sse);
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await sse.waitForEvents(1);
    expect(payloads<Event>(sse)[0]).toMatchObject({ event_type: 'job:queued', seq: 1 });
    expect(sse.isEnded).toBe(false);

    const global = await openSse(`${sys.mareUrl}/v1/triton/events?history=100`);
    streams.push(global);
    expect(global.status).toBe(200);
    const replayed = await global.waitForEvents(1);
    expect(replayed.some((m) => m.id?.startsWith(queuedJob))).toBe(true);
  });

  it('stays ready: its readiness does not depend on triton-api', async () => {
    const res = await timed<{ status: string }>('GET', `${system!.mareUrl}/ready`);
    expect(res.status).toBe(200);
  });

  it(
    'sees a job watched during the outage through to completion once triton-api is back',
    { timeout: 60_000 },
    async () => {
      const sys = system!;
      const watcher = streams.find(
        (s) => !s.isEnded && payloads<Event>(s)[0]?.job_id === queuedJob,
      );
      expect(watcher).toBeDefined();
      // A redeploy: a new triton-api (with a worker) on the same address and database.
      revived = await startTriton({
        common: sys.config.common,
        triton: sys.config.triton,
        logger: createLogger(sys.config.common),
        api: true,
        worker: true,
        port: Number(new URL(sys.tritonUrl).port),
      });
      await watcher!.ended;
      expect(payloads<Event>(watcher!).at(-1)).toMatchObject({
        event_type: 'job:completed',
        job_id: queuedJob,
      });
      const res = await http<{ status: string }>(
        'GET',
        `${sys.mareUrl}/v1/triton/jobs/${queuedJob}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('completed');
    },
  );
});

describe('triton-api hung (accepts connections, never answers)', () => {
  const TIMEOUT_MS = 300;
  /** Within about a second, on a shared and busy machine. */
  const BOUND_MS = 1500;
  let gatewayUrl = '';

  beforeAll(async () => {
    hung = createServer((socket) => {
      hungSockets.add(socket);
      // Read (and ignore) requests, so that a connection the gateway closes is seen to close.
      socket.resume();
      socket.on('error', () => undefined);
      socket.on('close', () => hungSockets.delete(socket));
    });
    await new Promise<void>((resolve) => hung!.listen(0, '127.0.0.1', () => resolve()));
    const address = hung.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    // A second gateway on the same Redis (so it shares the cache), pointed at the hung server.
    const config = loadConfig({
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      LOG_FORMAT: 'json',
      REDIS_URL: system!.redis.url,
      TRITON_API_URL: `http://127.0.0.1:${port}`,
      TRITON_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
    });
    gateway = await startMare({
      common: config.common,
      mare: config.mare,
      logger: createLogger(config.common),
      port: 0,
    });
    gatewayUrl = gateway.url;
  });

  it('answers uncached lookups within about a second with 504 UPSTREAM_TIMEOUT and a Retry-After', async () => {
    const times: number[] = [];
    for (const path of [
      `/v1/triton/jobs/${UNKNOWN_JOB}`,
      `/v1/triton/jobs/${UNKNOWN_JOB}/templates`,
    ]) {
      const res = await timed('GET', `${gatewayUrl}${path}`);
      expect(res.status, path).toBe(504);
      expectErrorCode(res.body, 'UPSTREAM_TIMEOUT');
      expect(retryAfter(res.headers)).toBeGreaterThanOrEqual(1);
      // It did wait for triton-api, as long as it was told to and no longer.
      expect(res.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 20);
      times.push(res.ms);
    }
    expect(Math.max(...times)).toBeLessThan(BOUND_MS);
  });

  it('bounds many concurrent lookups the same way, not one after another', async () => {
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        timed('GET', `${gatewayUrl}/v1/triton/jobs/${randomUUID()}`),
      ),
    );
    for (const res of results) {
      expect(res.status).toBe(504);
      expectErrorCode(res.body, 'UPSTREAM_TIMEOUT');
    }
    expect(performance.now() - started).toBeLessThan(BOUND_MS);
  });

  it('answers submissions and unknown-job subscriptions with 504, without opening a stream', async () => {
    const submit = await timed(
      'POST',
      `${gatewayUrl}/v1/triton/clients/${clientId}/generate-templates`,
    );
    expect(submit.status).toBe(504);
    expectErrorCode(submit.body, 'UPSTREAM_TIMEOUT');
    expect(retryAfter(submit.headers)).toBeGreaterThanOrEqual(1);
    expect(submit.ms).toBeLessThan(BOUND_MS);

    // A job with no history needs triton-api to say whether it exists.
    const subscribe = await timed('GET', `${gatewayUrl}/v1/triton/jobs/${UNKNOWN_JOB}/subscribe`);
    expect(subscribe.status).toBe(504);
    expect(subscribe.headers.get('content-type')).toMatch(/^application\/json/);
    expectErrorCode(subscribe.body, 'UPSTREAM_TIMEOUT');
  });

  it('still answers finished jobs from the cache at once', async () => {
    const res = await timed<{ status: string }>(
      'GET',
      `${gatewayUrl}/v1/triton/jobs/${finishedJob}`,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('x-cache')).toBe('hit');
    expect(res.ms).toBeLessThan(TIMEOUT_MS);
  });

  it('drops its connections to the hung server once it gives up on them', async () => {
    await waitFor(
      `the hung server's ${hungSockets.size} connections to close`,
      () => hungSockets.size === 0,
      {
        timeoutMs: 10_000,
      },
    );
  });
});
