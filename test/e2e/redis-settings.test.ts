import { createKeyspace } from '../../src/contract/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../src/cli/redis-server.js';
import { PartProcess } from '../helpers/part-process.js';
import { freePort } from '../helpers/ports.js';
import { startRedis } from '../helpers/redis.js';
import { openSse, payloads } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait.js';
import { createClientWithProposition, http } from '../helpers/system.js';
import type { EventData as Event } from '../helpers/events.js';

/**
 * The original triton configured its Redis with REDIS_HOST, REDIS_PORT, REDIS_DB and
 * REDIS_PASSWORD. `npm start` with such a `.env` must use that Redis (here: password-protected,
 * on a port of its own, database 3), not quietly start one of its own.
 */

const PASSWORD = 'seed-style-password-4711';

let redis: RedisServer | undefined;
let admin: Redis | undefined;
let launcher: PartProcess | undefined;
let dataDir = '';

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  await admin.config('SET', 'requirepass', PASSWORD);
  await admin.auth(PASSWORD);
  dataDir = mkdtempSync(path.join(tmpdir(), 'triton-redis-settings-'));
});

afterAll(async () => {
  await launcher?.stop('SIGTERM');
  // Had the launcher started a redis-server of its own, it would run in a group of its own.
  const started = launcher?.logs.find((l) => /^Started redis-server/.test(l.msg));
  const pid = Number(/\(pid (\d+)\)/.exec(started?.msg ?? '')?.[1]);
  if (pid > 0) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  admin?.disconnect();
  await redis?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start with the original REDIS_HOST, REDIS_PORT, REDIS_DB and REDIS_PASSWORD', () => {
  it(
    'uses that Redis and database for a whole job, starts none of its own, and never shows the password',
    { timeout: 120_000 },
    async () => {
      const [tritonPort, marePort, embeddedPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      launcher = await PartProcess.start(
        'src/cli/start.ts',
        {
          REDIS_HOST: '127.0.0.1',
          REDIS_PORT: String(redis!.port),
          REDIS_DB: '3',
          REDIS_PASSWORD: PASSWORD,
          DATA_DIR: dataDir,
          PGLITE_DATA_DIR: 'memory://',
          EMBEDDED_REDIS_PORT: String(embeddedPort),
          TRITON_API_PORT: String(tritonPort),
          MARE_API_PORT: String(marePort),
          GENERATION_STEP_MS: '20',
          LOG_LEVEL: 'info',
        },
        { ready: /^The system is up/, timeoutMs: 90_000 },
      );
      const up = launcher.logs.find((l) => /^The system is up/.test(l.msg))!;
      expect(up.msg).toContain(`redis://:***@127.0.0.1:${redis!.port}/3 (REDIS_HOST`);
      expect(launcher.logs.some((l) => /^Started redis-server/.test(l.msg))).toBe(false);

      const tritonUrl = `http://127.0.0.1:${tritonPort}`;
      const mareUrl = `http://127.0.0.1:${marePort}`;
      const clientId = await createClientWithProposition(tritonUrl);
      const res = await http<{ job_id: string }>(
        'POST',
        `${mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      expect(res.status).toBe(202);
      const jobId = res.body.job_id;
      const sse = await openSse(`${mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      await sse.ended;
      expect(payloads<Event>(sse).at(-1)).toMatchObject({ event_type: 'job:completed' });

      // Its history, result and queue live in database 3; database 0 holds nothing.
      await admin!.select(3);
      const keys = createKeyspace();
      expect(await admin!.exists(keys.jobHistoryKey(jobId))).toBe(1);
      // The gateway caches the result as the event reaches it on the all-jobs channel, which may
      // be just after the job's own stream delivered it.
      await waitFor('the result to be cached', async () =>
        Boolean(await admin!.exists(keys.jobResultKey(jobId))),
      );
      expect((await admin!.keys(`${keys.queuePrefix}:*`)).length).toBeGreaterThan(0);
      await admin!.select(0);
      expect(await admin!.dbsize()).toBe(0);

      expect(await launcher.stop('SIGTERM')).toBe(0);
      expect(`${launcher.lines.join('\n')}\n${launcher.output}`).not.toContain(PASSWORD);
    },
  );
});
