import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startRedis } from '../helpers/redis.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import { parseJsonStrict } from '../helpers/strict-json.js';
import { createClientWithProposition, http } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import type { EventData as Event } from '../helpers/events.js';

/**
 * Every line the parts log, read as an operator's tools read it. A representative workload
 * (jobs that complete, fail and are cancelled; lookups from the cache; refused requests; a
 * shutdown) runs through triton-api, a separate worker and mare-api, each its own process at
 * LOG_LEVEL=debug with JSON logs. Each line must be one JSON object with every key once:
 * JSON.parse keeps the last of two equal keys without a word, so the check parses them itself.
 */

let redis: RedisServer | undefined;
let database: { url: string; drop: () => Promise<void> } | undefined;
const parts: PartProcess[] = [];
let tritonUrl = '';
let mareUrl = '';

beforeAll(async () => {
  redis = await startRedis();
  database = await createTestDatabase();
  const common = {
    REDIS_URL: redis.url,
    DATABASE_URL: database.url,
    LOG_LEVEL: 'debug',
    // Long enough that a job can be cancelled while it runs.
    GENERATION_STEP_MS: '150',
  };
  const [tritonPort, marePort] = [await freePort(), await freePort()];
  tritonUrl = `http://127.0.0.1:${tritonPort}`;
  mareUrl = `http://127.0.0.1:${marePort}`;
  parts.push(
    await PartProcess.start(
      'src/triton/main-api.ts',
      { ...common, TRITON_API_PORT: String(tritonPort), TRITON_API_WORKER: 'false' },
      { ready: /^Server listening at/ },
    ),
    await PartProcess.start('src/triton/main-worker.ts', common, { ready: /^Worker running/ }),
    await PartProcess.start(
      'src/mare/main-api.ts',
      { ...common, MARE_API_PORT: String(marePort), TRITON_API_URL: tritonUrl },
      { ready: /^Server listening at/ },
    ),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(parts.map((p) => p.kill()));
  await redis?.close();
  await database?.drop();
});

async function submit(clientId: string): Promise<string> {
  const res = await http<{ job_id: string }>(
    'POST',
    `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(res.status).toBe(202);
  return res.body.job_id;
}

async function follow(jobId: string): Promise<Event[]> {
  const sse = await openSse(`${mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
  await sse.ended;
  return payloads<Event>(sse);
}

describe('log lines', () => {
  it(
    'are each one JSON object with every key once, through jobs that complete, fail and are cancelled, refused requests and a shutdown',
    { timeout: 120_000 },
    async () => {
      const clientId = await createClientWithProposition(tritonUrl);
      const all = await openSse(`${mareUrl}/v1/triton/events?history=10`);

      const completed = await submit(clientId);
      expect((await follow(completed)).at(-1)?.status).toBe('completed');
      for (let i = 0; i < 2; i++) {
        const lookup = await http('GET', `${mareUrl}/v1/triton/jobs/${completed}`);
        expect(lookup.status).toBe(200);
      }

      // Fails: the client does not exist; and a client without a value proposition.
      const unknown = await submit('00000000-0000-4000-8000-000000000000');
      expect((await follow(unknown)).at(-1)?.status).toBe('failed');
      const bare = await http<{ id: string }>('POST', `${tritonUrl}/clients/`, {
        name: 'No Proposition Ltd',
        industry: 'Retail',
      });
      expect((await follow(await submit(bare.body.id))).at(-1)?.status).toBe('failed');

      // Cancelled while it runs.
      const cancelled = await submit(clientId);
      const sse = await openSse(`${mareUrl}/v1/triton/jobs/${cancelled}/subscribe`);
      await waitFor('the job to start', () =>
        payloads<Event>(sse).some((e) => e.event_type === 'job:started'),
      );
      expect((await http('POST', `${mareUrl}/v1/triton/jobs/${cancelled}/cancel`)).status).toBe(
        202,
      );
      await sse.ended;
      expect(payloads<Event>(sse).at(-1)?.status).toBe('cancelled');

      // Refused requests, on both APIs.
      for (const [method, url, body] of [
        ['GET', `${mareUrl}/v1/triton/jobs/not-an-id`],
        ['GET', `${mareUrl}/nowhere`],
        ['DELETE', `${mareUrl}/v1/triton/jobs/${completed}`],
        ['POST', `${mareUrl}/v1/triton/clients`, '{"name":'],
        ['POST', `${tritonUrl}/clients/`, { name: '' }],
        ['GET', `${tritonUrl}/jobs/00000000-0000-4000-8000-000000000000`],
      ] as const) {
        const res = await http(method, url, body);
        expect(res.status, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      }
      all.close();

      for (const part of parts) expect(await part.stop('SIGTERM')).toBe(0);

      const lines = parts.flatMap((part) => part.lines);
      expect(lines.length).toBeGreaterThan(50);
      const problems: string[] = [];
      for (const line of lines) {
        try {
          const parsed = parseJsonStrict(line);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
            problems.push(`not a JSON object: ${line}`);
          }
        } catch (err) {
          problems.push(`${(err as Error).message}\n  in: ${line}`);
        }
      }
      expect(problems).toEqual([]);
      // The workload reached the lines it was meant to.
      const messages = parts.flatMap((p) => p.logs.map((l) => l.msg));
      for (const expected of [
        /^Job \S+ failed$/,
        /^Job \S+ completed with 7 templates$/,
        /^Cache hit for job /,
        /^Cancellation requested for job /,
        /^Stopped$/,
      ]) {
        expect(
          messages.some((m) => expected.test(m)),
          String(expected),
        ).toBe(true);
      }
    },
  );
});
