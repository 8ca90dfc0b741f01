import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorBody } from '../../../src/contract/index.js';
import { PartProcess } from '../../helpers/part-process.js';
import { freePort } from '../../helpers/ports.js';
import { startRedis } from '../../helpers/redis.js';
import { openSse, payloads, type SseConnection } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import { textsFromDeltas, type EventData as Event } from '../../helpers/events.js';

/**
 * Drill 6: the limits hold and shutdowns are graceful. Past SSE_MAX_CONNECTIONS,
 * BODY_LIMIT_BYTES or SUBMIT_RATE_LIMIT_PER_MINUTE a request is refused with its own status,
 * code and (where waiting helps) Retry-After. On SIGTERM mare-api tells every SSE client when
 * to come back before it exits, and a worker lets its running job finish, or, past
 * SHUTDOWN_TIMEOUT_MS, leaves it to another worker.
 */

let system: TestSystem | undefined;
const parts: PartProcess[] = [];
const streams: SseConnection[] = [];

afterEach(async () => {
  for (const sse of streams.splice(0)) sse.close();
  await Promise.all(parts.splice(0).map((p) => p.kill()));
  await system?.close();
  system = undefined;
});

function expectError(res: { status: number; body: unknown }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const parsed = ErrorBody.safeParse(res.body);
  expect(parsed.success, JSON.stringify(res.body)).toBe(true);
  expect(parsed.data?.error.code).toBe(code);
}

function retryAfter(res: { headers: Headers }): number {
  return Number(res.headers.get('retry-after'));
}

async function submit(baseUrl: string, path: string) {
  return http<{ job_id: string }>('POST', `${baseUrl}${path}`);
}

/** Starts a part of the system as its own process; it is killed after the test if still running. */
async function startPart(
  script: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<PartProcess> {
  const part = await PartProcess.start(script, { LOG_LEVEL: 'info', ...env }, { ready });
  parts.push(part);
  return part;
}

function startWorker(sys: TestSystem, env: Record<string, string>): Promise<PartProcess> {
  return startPart(
    'src/triton/main-worker.ts',
    {
      REDIS_URL: sys.redis.url,
      DATABASE_URL: sys.databaseUrl ?? '',
      GENERATION_STEP_MS: '300',
      JOB_LOCK_MS: '1000',
      JOB_SWEEP_INTERVAL_MS: '500',
      ...env,
    },
    /^Worker running/,
  );
}

function logIndex(part: PartProcess, pattern: RegExp): number {
  return part.logs.findIndex((line) => pattern.test(line.msg));
}

describe('SSE_MAX_CONNECTIONS', () => {
  it(
    'refuses the connection past the limit with 503 TOO_MANY_CONNECTIONS and a Retry-After, and accepts one again once a slot frees',
    { timeout: 60_000 },
    async () => {
      // No worker: the job stays queued, so its stream stays open.
      system = await startSystem({ worker: false, env: { SSE_MAX_CONNECTIONS: '3' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const { body } = await submit(
        sys.mareUrl,
        `/v1/triton/clients/${clientId}/generate-templates`,
      );
      const jobUrl = `${sys.mareUrl}/v1/triton/jobs/${body.job_id}/subscribe`;
      const allUrl = `${sys.mareUrl}/v1/triton/events`;

      for (const url of [jobUrl, allUrl, allUrl]) {
        const sse = await openSse(url);
        streams.push(sse);
        expect(sse.status).toBe(200);
      }
      for (const url of [jobUrl, allUrl]) {
        const refused = await http('GET', url, undefined, {
          accept: 'text/event-stream',
        });
        expectError(refused, 503, 'TOO_MANY_CONNECTIONS');
        expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
        expect(retryAfter(refused)).toBeGreaterThanOrEqual(1);
      }
      expect(sys.mare.hub.size).toBe(3);
      const metrics = await http<string>('GET', `${sys.mareUrl}/metrics`);
      expect(metrics.body).toMatch(/mare_sse_rejected_total\{reason="capacity"[^}]*\} 2\b/);

      // Closing one frees its slot.
      streams[1]!.close();
      const again = await waitFor('a slot to free up', async () => {
        const sse = await openSse(allUrl);
        if (sse.status === 200) return sse;
        await sse.ended;
        return false;
      });
      streams.push(again);
      expect(again.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(sys.mare.hub.size).toBe(3);
    },
  );
});

/** POSTs `body` in chunks without a Content-Length, as a streaming client would. */
function postChunked(url: string, chunks: string[]): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    // The server may answer and close before it has read everything: the answer is what counts.
    req.on('error', (err) => (req.writableFinished ? undefined : reject(err)));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('BODY_LIMIT_BYTES', () => {
  it(
    'answers a larger body with 413 PAYLOAD_TOO_LARGE on both APIs',
    { timeout: 60_000 },
    async () => {
      system = await startSystem({ env: { BODY_LIMIT_BYTES: '512' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const big = { name: 'n'.repeat(600), industry: 'Retail' };
      const bigProposition = { content: 'c'.repeat(600), is_active: true };

      for (const [url, body] of [
        [`${sys.mareUrl}/v1/triton/clients`, big],
        [`${sys.mareUrl}/v1/triton/clients/${clientId}/value-propositions`, bigProposition],
        [`${sys.tritonUrl}/clients/`, big],
        [`${sys.tritonUrl}/clients/${clientId}/value-propositions`, bigProposition],
      ] as const) {
        expectError(await http('POST', url, body), 413, 'PAYLOAD_TOO_LARGE');
      }
      // Without a Content-Length the limit holds too, counted as the body streams in.
      for (const url of [`${sys.mareUrl}/v1/triton/clients`, `${sys.tritonUrl}/clients/`]) {
        const res = await postChunked(url, ['{"name":"', 'n'.repeat(400), 'n'.repeat(400), '"}']);
        expectError(res, 413, 'PAYLOAD_TOO_LARGE');
      }
      // Just under the limit is fine, on both.
      const justUnder = { name: 'n'.repeat(200), industry: 'i'.repeat(100) };
      expect(JSON.stringify(justUnder).length).toBeGreaterThan(300);
      for (const url of [`${sys.mareUrl}/v1/triton/clients`, `${sys.tritonUrl}/clients/`]) {
        expect((await http('POST', url, justUnder)).status).toBe(201);
      }
    },
  );
});

describe('SUBMIT_RATE_LIMIT_PER_MINUTE', () => {
  it(
    'answers the 4th submission within a minute with 429 RATE_LIMITED and a Retry-After on mare-api',
    { timeout: 60_000 },
    async () => {
      system = await startSystem({ env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '3' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const path = `/v1/triton/clients/${clientId}/generate-templates`;
      for (let i = 0; i < 3; i++) expect((await submit(sys.mareUrl, path)).status).toBe(202);
      const limited = await submit(sys.mareUrl, path);
      expectError(limited, 429, 'RATE_LIMITED');
      expect(retryAfter(limited)).toBeGreaterThanOrEqual(1);
      expect(retryAfter(limited)).toBeLessThanOrEqual(60);
      // Only submissions are limited: lookups still answer.
      const ok = await http('GET', `${sys.mareUrl}/v1/triton/clients`);
      expect(ok.status).toBe(200);
    },
  );

  it(
    'answers the 4th submission within a minute with 429 RATE_LIMITED and a Retry-After on triton-api, which mare-api passes on',
    { timeout: 60_000 },
    async () => {
      system = await startSystem({ env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '3' } });
      const sys = system;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const path = `/clients/${clientId}/generate-templates`;
      for (let i = 0; i < 3; i++) expect((await submit(sys.tritonUrl, path)).status).toBe(202);
      const limited = await submit(sys.tritonUrl, path);
      expectError(limited, 429, 'RATE_LIMITED');
      expect(retryAfter(limited)).toBeGreaterThanOrEqual(1);
      expect(retryAfter(limited)).toBeLessThanOrEqual(60);

      // mare-api's own count is still 0, but triton-api refuses the gateway's request: the
      // client gets the same answer, with when to come back.
      const viaMare = await submit(sys.mareUrl, `/v1/triton${path}`);
      expectError(viaMare, 429, 'RATE_LIMITED');
      expect(retryAfter(viaMare)).toBeGreaterThanOrEqual(1);
      expect(retryAfter(viaMare)).toBeLessThanOrEqual(60);
    },
  );

  it(
    'is not dodged by naming other addresses in X-Forwarded-For, on either API',
    { timeout: 60_000 },
    async () => {
      // One system per API: mare-api passes each submission on, and triton-api counts it too.
      for (const api of ['mare-api', 'triton-api']) {
        system = await startSystem({ env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '3' } });
        const sys = system;
        const clientId = await createClientWithProposition(sys.tritonUrl);
        const path =
          api === 'mare-api'
            ? `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`
            : `${sys.tritonUrl}/clients/${clientId}/generate-templates`;
        // A caller on this machine says it is someone else each time, with and without a
        // made-up gateway secret: it is counted by its own address all the same.
        const as = (n: number) =>
          http<{ job_id: string }>('POST', path, undefined, {
            'x-forwarded-for': `198.51.100.${n}`,
            ...(n % 2 ? { 'x-gateway-secret': `guess-${n}` } : {}),
          });
        for (let n = 1; n <= 3; n++) expect((await as(n)).status, api).toBe(202);
        const limited = await as(4);
        expectError(limited, 429, 'RATE_LIMITED');
        expect(retryAfter(limited)).toBeGreaterThanOrEqual(1);
        await sys.close();
        system = undefined;
      }
    },
  );

  it(
    'counts per end user behind the gateway, on the gateway and on triton-api, which takes the user from the gateway alone',
    { timeout: 60_000 },
    async () => {
      const secret = 'a-secret-that-only-the-gateway-and-triton-api-share';
      system = await startSystem({
        env: { SUBMIT_RATE_LIMIT_PER_MINUTE: '3', GATEWAY_SECRET: secret },
      });
      const sys = system;
      // A gateway behind a proxy of the operator's (on loopback here) that names the user.
      const port = await freePort();
      await startPart(
        'src/mare/main-api.ts',
        {
          REDIS_URL: sys.redis.url,
          TRITON_API_URL: sys.tritonUrl,
          MARE_API_PORT: String(port),
          SUBMIT_RATE_LIMIT_PER_MINUTE: '3',
          TRUST_PROXY: 'loopback',
          GATEWAY_SECRET: secret,
        },
        /^Server listening at/,
      );
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const path = `http://127.0.0.1:${port}/v1/triton/clients/${clientId}/generate-templates`;
      const as = (user: string) => http('POST', path, undefined, { 'x-forwarded-for': user });
      for (let i = 0; i < 3; i++) expect((await as('203.0.113.1')).status).toBe(202);
      expectError(await as('203.0.113.1'), 429, 'RATE_LIMITED');
      // Had either API counted the gateway rather than the user, this one would be refused.
      expect((await as('203.0.113.2')).status).toBe(202);
      expect((await as('203.0.113.2')).status).toBe(202);

      // triton-api counted the gateway's submissions for the users: this caller, the gateway's
      // own address, has used none of its own, however it names itself.
      const direct = `${sys.tritonUrl}/clients/${clientId}/generate-templates`;
      const claiming = (user: string) =>
        http('POST', direct, undefined, { 'x-forwarded-for': user, 'x-gateway-secret': 'wrong' });
      for (let i = 0; i < 3; i++) expect((await claiming(`198.51.100.${i}`)).status).toBe(202);
      expectError(await claiming('198.51.100.9'), 429, 'RATE_LIMITED');
    },
  );
});

describe('WRITE_RATE_LIMIT_PER_MINUTE', () => {
  it(
    'answers the 4th write within a minute with 429 RATE_LIMITED and a Retry-After on both APIs, whatever X-Forwarded-For says',
    { timeout: 60_000 },
    async () => {
      for (const api of ['mare-api', 'triton-api']) {
        system = await startSystem({ env: { WRITE_RATE_LIMIT_PER_MINUTE: '3' } });
        const sys = system;
        const url =
          api === 'mare-api' ? `${sys.mareUrl}/v1/triton/clients` : `${sys.tritonUrl}/clients/`;
        const write = (n: number) =>
          http(
            'POST',
            url,
            { name: `Client ${n}`, industry: 'Retail' },
            { 'x-forwarded-for': `198.51.100.${n}` },
          );
        for (let n = 1; n <= 3; n++) expect((await write(n)).status, api).toBe(201);
        const limited = await write(4);
        expectError(limited, 429, 'RATE_LIMITED');
        expect(retryAfter(limited)).toBeGreaterThanOrEqual(1);
        expect(retryAfter(limited)).toBeLessThanOrEqual(60);
        expect(ErrorBody.parse(limited.body).error.message).toMatch(
          /^Too many writes .*: at most 3 per minute; retry in /,
        );
        // Value propositions and cancellations are writes too; reads are not.
        const listed = await http<{ clients: Array<{ id: string }> }>('GET', url);
        expect(listed.status).toBe(200);
        const clientId = listed.body.clients[0]!.id;
        const cancel = await http(
          'POST',
          api === 'mare-api'
            ? `${sys.mareUrl}/v1/triton/jobs/${clientId}/cancel`
            : `${sys.tritonUrl}/jobs/${clientId}/cancel`,
        );
        expectError(cancel, 429, 'RATE_LIMITED');
        const proposition = await http(
          'POST',
          `${url.replace(/\/$/, '')}/${clientId}/value-propositions`,
          {
            content: 'We reduce readmissions',
          },
        );
        expectError(proposition, 429, 'RATE_LIMITED');
        if (api === 'triton-api') break;
        await sys.close();
        system = undefined;
      }
    },
  );
});

/** Reads an SSE response to its end, noting whether the server ended it or the connection broke. */
async function readStream(url: string) {
  const response = await fetch(url, { headers: { accept: 'text/event-stream' } });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const state = { text: '', end: undefined as 'ended' | 'broken' | undefined };
  const done = (async () => {
    try {
      for (;;) {
        const { done: finished, value } = await reader.read();
        if (finished) return (state.end = 'ended');
        state.text += decoder.decode(value, { stream: true });
      }
    } catch {
      return (state.end = 'broken');
    }
  })();
  return { state, done, cancel: () => void reader.cancel().catch(() => undefined) };
}

describe('graceful shutdown on SIGTERM', () => {
  it(
    'mare-api ends every SSE stream with a retry: hint, then exits 0',
    { timeout: 90_000 },
    async () => {
      // A long job (7 × 2 s): still running when the gateway stops.
      system = await startSystem({
        env: { GENERATION_STEP_MS: '2000', SHUTDOWN_TIMEOUT_MS: '500' },
      });
      const sys = system;
      const port = await freePort();
      const mare = await startPart(
        'src/mare/main-api.ts',
        {
          REDIS_URL: sys.redis.url,
          TRITON_API_URL: sys.tritonUrl,
          MARE_API_PORT: String(port),
          SSE_RETRY_MS: '1234',
        },
        /^Server listening at/,
      );
      const mareUrl = `http://127.0.0.1:${port}`;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const { body } = await submit(mareUrl, `/v1/triton/clients/${clientId}/generate-templates`);

      const job = await readStream(`${mareUrl}/v1/triton/jobs/${body.job_id}/subscribe`);
      const all = await readStream(`${mareUrl}/v1/triton/events`);
      // Both are live: the job stream has seen it start, the all-jobs stream a live event.
      await waitFor('the job to start', () => job.state.text.includes('"job:started"'));
      await waitFor('a live event on the all-jobs stream', () => all.state.text.includes('data:'), {
        timeoutMs: 15_000,
      });

      const code = await mare.stop('SIGTERM');
      await Promise.all([job.done, all.done]);
      expect(code).toBe(0);
      for (const { state } of [job, all]) {
        expect(state.end).toBe('ended');
        // The first `retry:` opens the stream; the last one is the shutdown hint.
        expect(state.text).toMatch(/^retry: 1234\n\n/);
        expect(state.text.endsWith('retry: 1234\n\n')).toBe(true);
      }
      // The job had not finished: its stream was ended by the shutdown, not by the job.
      expect(job.state.text).not.toContain('Connection closing');
      expect(logIndex(mare, /^Stopped$/)).toBeGreaterThan(logIndex(mare, /^Received SIGTERM/));
    },
  );

  it(
    'triton-api with its worker exits 0 on SIGTERM while its Redis is down',
    { timeout: 90_000 },
    async () => {
      const redis = await startRedis();
      try {
        const port = await freePort();
        const triton = await startPart(
          'src/triton/main-api.ts',
          {
            REDIS_URL: redis.url,
            TRITON_API_PORT: String(port),
            PGLITE_DATA_DIR: 'memory://',
            SHUTDOWN_TIMEOUT_MS: '500',
          },
          /^Server listening at/,
        );
        await redis.kill();
        await triton.waitForLog(/^Redis connection "triton" failed/);
        const signalledAt = performance.now();
        expect(await triton.stop('SIGTERM', 45_000)).toBe(0);
        // A sanity bound: the drain waits are seconds, not the kill above.
        expect(performance.now() - signalledAt).toBeLessThan(40_000);
        expect(logIndex(triton, /^Stopped$/)).toBeGreaterThan(
          logIndex(triton, /^Received SIGTERM/),
        );
      } finally {
        await redis.close();
      }
    },
  );

  it('a worker lets its running job finish, then exits 0', { timeout: 90_000 }, async () => {
    system = await startSystem({ worker: false });
    const sys = system;
    const worker = await startWorker(sys, {});
    const clientId = await createClientWithProposition(sys.tritonUrl);
    const { body } = await submit(sys.mareUrl, `/v1/triton/clients/${clientId}/generate-templates`);
    const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${body.job_id}/subscribe`);
    streams.push(sse);
    await waitFor('the job to be under way', () =>
      payloads<Event>(sse).some((e) => e.event_type === 'job:progress'),
    );

    const exited = worker.stop('SIGTERM', 60_000);
    await sse.ended;
    expect(await exited).toBe(0);

    const events = payloads<Event>(sse);
    expect(events.filter((e) => e.event_type === 'job:started')).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', status: 'completed' });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    // SIGTERM came mid-job, the job completed, and only then did the worker stop.
    const signalled = logIndex(worker, /^Received SIGTERM/);
    const completed = logIndex(worker, /completed with 7 templates/);
    expect(signalled).toBeGreaterThanOrEqual(0);
    expect(completed).toBeGreaterThan(signalled);
    expect(logIndex(worker, /^Stopped$/)).toBeGreaterThan(completed);
  });

  it(
    'a job handed back by two workers that shut down mid-job goes back to the queue at once, is not counted as stalled, and continues where it stopped',
    { timeout: 90_000 },
    async () => {
      system = await startSystem({ worker: false });
      const sys = system;
      // 7 × 1 s: far longer than the 200 ms a worker may wait for it. With JOB_MAX_STALLED=0 a
      // single stall would fail the job: a graceful hand-back must not count as one.
      const slowWorker = () =>
        startWorker(sys, {
          GENERATION_STEP_MS: '1000',
          SHUTDOWN_TIMEOUT_MS: '200',
          JOB_MAX_STALLED: '0',
          // Long enough that only a hand-back, never a lapsed lock, can explain a quick restart.
          JOB_LOCK_MS: '30000',
        });
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const { body } = await submit(
        sys.mareUrl,
        `/v1/triton/clients/${clientId}/generate-templates`,
      );
      const jobId = body.job_id;
      const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      streams.push(sse);
      const progressCount = () =>
        payloads<Event>(sse).filter((e) => e.event_type === 'job:progress').length;

      for (let round = 1; round <= 2; round++) {
        const worker = await slowWorker();
        const before = progressCount();
        await waitFor(`round ${round}: a template stored and the next one being written`, () => {
          const events = payloads<Event>(sse);
          return progressCount() > before && events.at(-1)?.event_type === 'job:delta';
        });
        const signalledAt = performance.now();
        expect(await worker.stop('SIGTERM', 30_000)).toBe(0);
        expect(performance.now() - signalledAt).toBeLessThan(5000);
        expect(
          logIndex(worker, /did not finish within 200 ms; they go back to the queue/),
        ).toBeGreaterThan(-1);
        expect(logIndex(worker, /went back to the queue/)).toBeGreaterThan(-1);
        // Queued again at once, for the database, for a lookup, and for watchers.
        const meanwhile = await http<{ status: string }>('GET', `${sys.tritonUrl}/jobs/${jobId}`);
        expect(meanwhile.body.status).toBe('queued');
        await waitFor(
          'job:queued again on the stream',
          () => payloads<Event>(sse).at(-1)?.event_type === 'job:queued',
        );
        expect(sse.isEnded).toBe(false);
      }

      const last = await startWorker(sys, { GENERATION_STEP_MS: '50', JOB_MAX_STALLED: '0' });
      await sse.ended;
      const events = payloads<Event>(sse);
      expect(events.filter((e) => e.event_type === 'job:started')).toHaveLength(3);
      expect(events.filter((e) => e.event_type === 'job:queued')).toHaveLength(3);
      expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', status: 'completed' });
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      // Progress never went backwards, and each template was stored once.
      const progress = events.filter((e) => e.event_type === 'job:progress');
      const dones = progress.map((e) => e.templates_done as number);
      expect(dones).toEqual([...dones].sort((x, y) => x - y));
      expect(new Set(progress.map((e) => e.template_id)).size).toBe(7);
      await last.waitForLog(/completed with 7 templates/);
      const doc = await http<{ status: string; template_count: number; template_ids: string[] }>(
        'GET',
        `${sys.mareUrl}/v1/triton/jobs/${jobId}`,
      );
      expect(doc.body).toMatchObject({ status: 'completed', template_count: 7 });
      // The text written before each hand-back was continued, not written again.
      const templates = await http<{ templates: Array<{ position: number; body: string }> }>(
        'GET',
        `${sys.tritonUrl}/jobs/${jobId}/templates`,
      );
      const texts = textsFromDeltas(events);
      for (const t of templates.body.templates) expect(texts.get(t.position)).toBe(t.body);
    },
  );
});
