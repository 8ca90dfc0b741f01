import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { connectTo } from '../helpers/redis.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { RedisSentinel } from '../helpers/redis-sentinel.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import { createClientWithProposition, http, type TestRedis } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { expectWholeRun, type EventData as Event } from '../helpers/events.js';

/**
 * `npm start` (the launcher) given a REDIS_URL that names a Redis Cluster node or a Sentinel
 * setup: it starts no redis-server of its own, runs the whole system on that Redis, and leaves
 * it running when it stops.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe.each([
  ['a Redis Cluster, named by one node', () => RedisCluster.start()],
  ['Redis Sentinel', () => RedisSentinel.start()],
])('npm start with REDIS_URL naming %s', (_kind, start: () => Promise<TestRedis>) => {
  it(
    'runs a job end to end on it, and stops without stopping it',
    { timeout: 120_000 },
    async () => {
      const redis = await start();
      cleanups.push(() => redis.close());
      const dataDir = mkdtempSync(path.join(tmpdir(), 'triton-launcher-redis-'));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const [tritonPort, marePort] = await Promise.all([freePort(), freePort()]);
      const launcher = await PartProcess.start(
        'src/cli/start.ts',
        {
          DATA_DIR: dataDir,
          REDIS_URL: redis.url,
          TRITON_API_PORT: String(tritonPort),
          MARE_API_PORT: String(marePort),
          GENERATION_STEP_MS: '20',
        },
        { ready: /^The system is up/, timeoutMs: 90_000 },
      );
      cleanups.push(() => launcher.kill());
      const up = launcher.logs.find((l) => /^The system is up/.test(l.msg));
      expect(up?.msg).toContain(redis.url);
      expect(launcher.logs.some((l) => /^Started redis-server/.test(l.msg))).toBe(false);

      const tritonUrl = `http://127.0.0.1:${tritonPort}`;
      const mareUrl = `http://127.0.0.1:${marePort}`;
      const clientId = await createClientWithProposition(tritonUrl);
      const submitted = await http<{ job_id: string }>(
        'POST',
        `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      expect(submitted.status).toBe(202);
      const sse = await openSse(`${mareUrl}/v1/triton/jobs/${submitted.body.job_id}/subscribe`);
      await waitFor("the job's stream to end", () => sse.isEnded, { timeoutMs: 60_000 });
      const events = payloads<Event>(sse);
      expect(events.at(-1)).toMatchObject({ event_type: 'job:completed', template_count: 7 });
      expectWholeRun(events);
      const lookup = await http<{ status: string }>(
        'GET',
        `${mareUrl}/v1/triton/jobs/${submitted.body.job_id}`,
      );
      expect(lookup.body.status).toBe('completed');

      expect(await launcher.stop('SIGINT')).toBe(0);
      // The Redis was not the launcher's: it still answers, with the job's history in it.
      if (redis instanceof RedisSentinel) {
        const reader = connectTo(redis.url);
        try {
          expect(await reader.ping()).toBe('PONG');
        } finally {
          reader.disconnect();
        }
      } else if (redis instanceof RedisCluster) {
        expect(redis.nodes.every((n) => n.child.exitCode === null)).toBe(true);
      }
    },
  );
});
