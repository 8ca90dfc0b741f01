import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../../src/cli/redis-server.js';
import { PartProcess } from '../../helpers/part-process.js';
import { freePort } from '../../helpers/ports.js';
import { startRedis } from '../../helpers/redis.js';
import { openSse, payloads } from '../../helpers/sse-client.js';
import { createClientWithProposition, http } from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import type { EventData as Event } from '../../helpers/events.js';

/**
 * Drill: the Redis password changes under a running system (triton-api with its worker, and
 * mare-api, as their own processes), so that every connection fails to authenticate on each
 * reconnect, then it is set back. Whatever the parts log meanwhile, the password is in no line
 * of their output; each kind of failure is logged once, not once per retry; and once the
 * password is back the system recovers by itself.
 */

const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const OTHER_PASSWORD = `other-${randomBytes(12).toString('hex')}`;

let redis: RedisServer | undefined;
let admin: Redis | undefined;
let triton: PartProcess | undefined;
let mare: PartProcess | undefined;
let tritonUrl = '';
let mareUrl = '';
/** Every HTTP answer body the drill received, checked for the password too. */
const answers: string[] = [];

async function call(method: string, url: string, body?: unknown) {
  const res = await http<unknown>(method, url, body);
  answers.push(typeof res.body === 'string' ? res.body : JSON.stringify(res.body ?? ''));
  return res;
}

/** Runs one job through mare-api and follows it to its end over SSE. */
async function runJob(clientId: string): Promise<Event[]> {
  const res = await call('POST', `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const jobId = (res.body as { job_id: string }).job_id;
  const sse = await openSse(`${mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
  await sse.ended;
  return payloads<Event>(sse);
}

/** Connections Redis has accepted so far: during the drill, each is an attempt to reconnect. */
async function connectionsReceived(): Promise<number> {
  const info = await admin!.info('stats');
  return Number(/total_connections_received:(\d+)/.exec(info)?.[1] ?? 0);
}

/** Every line both parts wrote, on stdout and stderr. */
function everything(): string {
  return [triton, mare].map((p) => `${p!.lines.join('\n')}\n${p!.output}`).join('\n');
}

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  await admin.config('SET', 'requirepass', PASSWORD);
  const url = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`;
  const [tritonPort, marePort] = [await freePort(), await freePort()];
  tritonUrl = `http://127.0.0.1:${tritonPort}`;
  mareUrl = `http://127.0.0.1:${marePort}`;
  triton = await PartProcess.start(
    'src/triton/main-api.ts',
    {
      REDIS_URL: url,
      TRITON_API_PORT: String(tritonPort),
      PGLITE_DATA_DIR: 'memory://',
      GENERATION_STEP_MS: '20',
      LOG_LEVEL: 'debug',
    },
    { ready: /^Server listening at/ },
  );
  mare = await PartProcess.start(
    'src/mare/main-api.ts',
    {
      REDIS_URL: url,
      TRITON_API_URL: tritonUrl,
      MARE_API_PORT: String(marePort),
      LOG_LEVEL: 'debug',
    },
    { ready: /^Server listening at/ },
  );
}, 90_000);

afterAll(async () => {
  await Promise.all([triton?.kill(), mare?.kill()]);
  admin?.disconnect();
  await redis?.close();
});

describe('a Redis password changed under the running system', () => {
  it(
    'never logs the password, logs each kind of failure once rather than once per retry, and recovers when the password is set back',
    { timeout: 120_000 },
    async () => {
      const clientId = await createClientWithProposition(tritonUrl);
      expect((await runJob(clientId)).at(-1)?.status).toBe('completed');
      const linesBefore = { triton: triton!.logs.length, mare: mare!.logs.length };

      // Every connection is dropped and must authenticate again, with a password that is now wrong.
      await admin!.config('SET', 'requirepass', OTHER_PASSWORD);
      await admin!.call('CLIENT', 'KILL', 'TYPE', 'normal');
      await admin!.call('CLIENT', 'KILL', 'TYPE', 'pubsub');

      // Requests that need Redis meanwhile are refused cleanly, never with a 500.
      await waitFor('mare-api to report Redis as not ready', async () => {
        const ready = await call('GET', `${mareUrl}/ready`);
        return ready.status === 503;
      });
      expect((await call('GET', `${tritonUrl}/ready`)).status).toBe(503);
      const unknownJob = '00000000-0000-4000-8000-000000000000';
      for (const [method, url, status] of [
        ['POST', `${tritonUrl}/clients/${clientId}/generate-templates`, 503],
        ['POST', `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`, 503],
        // The cache does not answer: triton-api does (it does not know the job).
        ['GET', `${mareUrl}/v1/triton/jobs/${unknownJob}`, 404],
        ['GET', `${mareUrl}/v1/triton/jobs/${unknownJob}/subscribe`, 503],
        ['GET', `${mareUrl}/v1/triton/events?history=5`, 503],
      ] as const) {
        const res = await call(method, url);
        expect(res.status, `${method} ${url}: ${JSON.stringify(res.body)}`).toBe(status);
      }
      // Let every connection fail to reconnect many times over.
      const connectedAtStart = await connectionsReceived();
      await waitFor(
        'connections to be refused many times',
        async () => {
          return (await connectionsReceived()) - connectedAtStart >= 30;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );

      // The outage is logged, and clearly: each kind of failure once, not once per retry.
      // Each process says it for itself: a kind is a process's message.
      const outage = [
        ...triton!.logs.slice(linesBefore.triton).map((l) => ({ part: 'triton', line: l })),
        ...mare!.logs.slice(linesBefore.mare).map((l) => ({ part: 'mare', line: l })),
      ].filter(({ line }) => JSON.stringify(line).includes('WRONGPASS'));
      expect(outage.length).toBeGreaterThan(0);
      const perKind = new Map<string, number>();
      for (const { part, line } of outage) {
        // A line about one job (a refused submission) is about that job, not a repeat.
        if (line.job_id !== undefined) continue;
        const kind = `${part}: ${line.msg}`;
        perKind.set(kind, (perKind.get(kind) ?? 0) + 1);
      }
      expect(Object.fromEntries([...perKind].filter(([, n]) => n > 1))).toEqual({});

      // The password is set back: every connection authenticates again by itself.
      await admin!.config('SET', 'requirepass', PASSWORD);
      for (const base of [tritonUrl, mareUrl]) {
        await waitFor(
          `${base} to be ready again`,
          async () => {
            return (await call('GET', `${base}/ready`)).status === 200;
          },
          { timeoutMs: 30_000, intervalMs: 100 },
        );
      }
      await triton!.waitForLog(/^Redis connection "triton" restored/);
      await mare!.waitForLog(/^Redis connection "mare-subscriber" restored/);
      const after = await waitFor(
        'a job to run through the recovered system',
        async () => {
          const events = await runJob(clientId);
          return events.at(-1)?.status === 'completed' && events;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      expect(after.at(-1)).toMatchObject({ event_type: 'job:completed' });

      expect(triton!.running && mare!.running).toBe(true);
      // Nothing but JSON log lines: no library printing an error (and its command) on its own.
      expect(triton!.output + mare!.output).toBe('');
      const output = everything();
      expect(output).toContain('WRONGPASS');
      expect(output).not.toContain(PASSWORD);
      expect(output).not.toContain(OTHER_PASSWORD);
      expect(answers.join('\n')).not.toContain(PASSWORD);
    },
  );
});
