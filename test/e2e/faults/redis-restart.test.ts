import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { RedisServer } from '../../../src/cli/redis-server.js';
import { freePort } from '../../helpers/ports.js';
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
 * Drill 1: Redis is killed (SIGKILL, as in a crash) and restarted on the same port and data
 * directory while 50 jobs run and 200 SSE clients watch them. The publisher, the queue and the
 * gateway's subscriber reconnect by themselves; every client must still get its job's terminal
 * event, and no job may stay running.
 */

const JOBS = 50;
const WATCHERS_PER_JOB = 4;

let system: TestSystem | undefined;
let redis: RedisServer | undefined;
let dir = '';

afterAll(async () => {
  await system?.close();
  await redis?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(
  'every watcher gets its job’s terminal event after Redis crashes and comes back',
  { timeout: 120_000 },
  async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'drill-redis-'));
    const port = await freePort();
    // AOF with fsync on every write: what a production Redis with persistence keeps across a crash.
    redis = await RedisServer.start({ port, dir, appendfsync: 'always' });
    system = await startSystem({
      redis,
      env: {
        GENERATION_STEP_MS: '80',
        WORKER_CONCURRENCY: '25',
        SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
      },
    });
    const sys = system;
    const clientId = await createClientWithProposition(sys.tritonUrl);

    const jobIds: string[] = [];
    for (let i = 0; i < JOBS; i++) {
      const res = await http<{ job_id: string }>(
        'POST',
        `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      expect(res.status).toBe(202);
      jobIds.push(res.body.job_id);
    }
    const watchers: Array<{ jobId: string; sse: SseConnection }> = [];
    for (const jobId of jobIds) {
      for (let w = 0; w < WATCHERS_PER_JOB; w++) {
        watchers.push({
          jobId,
          sse: await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`),
        });
      }
    }

    // Crash Redis once work is under way, and bring it back on the same port and data.
    await waitFor('jobs to be under way', () =>
      watchers.some(({ sse }) => payloads<Event>(sse).some((e) => e.event_type === 'job:progress')),
    );
    const inFlight = watchers.filter(({ sse }) => !sse.isEnded).length;
    await redis.kill();
    await waitFor('the publisher to notice', () => sys.triton.redis.status !== 'ready');
    redis = await RedisServer.start({ port, dir, appendfsync: 'always' });

    await waitFor('every watcher to end', () => watchers.every(({ sse }) => sse.isEnded), {
      timeoutMs: 90_000,
    });

    expect(inFlight).toBeGreaterThan(0);
    for (const { jobId, sse } of watchers) {
      const events = payloads<Event>(sse);
      const last = events.at(-1);
      expect(last, `watcher of ${jobId}`).toMatchObject({ job_id: jobId, status: 'completed' });
      const seqs = events.map((e) => e.seq);
      // Every event at most once, in order.
      expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
      expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
    }
    for (const jobId of jobIds) {
      const res = await http<{ status: string; template_count: number }>(
        'GET',
        `${sys.tritonUrl}/jobs/${jobId}`,
      );
      expect(res.body).toMatchObject({ status: 'completed', template_count: 7 });
    }
  },
);
