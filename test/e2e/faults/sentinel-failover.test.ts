import { afterAll, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { createKeyspace, decodeEvent, historyEntryField } from '../../../src/contract/index.js';
import { startMare, type MareService } from '../../../src/mare/mare-service.js';
import { connectTo } from '../../helpers/redis.js';
import { RedisSentinel } from '../../helpers/redis-sentinel.js';
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
 * Drill: behind Redis Sentinel (a master, a replica, three sentinels), the master is killed with
 * SIGKILL while 20 jobs run and two gateways serve their watchers. The sentinels promote the
 * replica; every connection of the worker and the gateways asks them where the master now is
 * and reconnects there; publishes are sent again, subscriptions made again, and what Pub/Sub
 * dropped is replayed from history. Every watcher must get its job's terminal event, each event
 * at most once and in order, and every job must complete.
 */

const JOBS = 20;
const keys = createKeyspace();

let sentinel: RedisSentinel | undefined;
let system: TestSystem | undefined;
let second: MareService | undefined;

afterAll(async () => {
  await second?.close();
  await system?.close();
  await sentinel?.close();
});

it(
  'every watcher gets its job’s terminal event after the master dies and the sentinels promote its replica',
  { timeout: 120_000 },
  async () => {
    sentinel = await RedisSentinel.start();
    system = await startSystem({
      redis: sentinel,
      env: {
        GENERATION_STEP_MS: '250',
        WORKER_CONCURRENCY: String(JOBS),
        SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
        // Longer than a failover: locks held across it are renewed, not lost.
        JOB_LOCK_MS: '10000',
      },
    });
    const sys = system;
    second = await startMare({
      common: sys.config.common,
      mare: { ...sys.config.mare, tritonApiUrl: sys.tritonUrl },
      logger: createLogger(sys.config.common),
      port: 0,
    });
    const gateways = [sys.mareUrl, second.url];
    const clientId = await createClientWithProposition(sys.tritonUrl);

    const everything = await Promise.all(gateways.map((url) => openSse(`${url}/v1/triton/events`)));
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
    for (const [i, jobId] of jobIds.entries()) {
      const url = gateways[i % 2] ?? sys.mareUrl;
      watchers.push({ jobId, sse: await openSse(`${url}/v1/triton/jobs/${jobId}/subscribe`) });
    }

    await waitFor('every job to be under way', () =>
      watchers.every(({ sse }) =>
        payloads<Event>(sse).some((e) => e.event_type === 'job:progress'),
      ),
    );
    const inFlight = watchers.filter(({ sse }) => !sse.isEnded).length;
    const failover = await sentinel.killMaster();

    await waitFor('every watcher to end', () => watchers.every(({ sse }) => sse.isEnded), {
      timeoutMs: 60_000,
    });

    // The drill took the path it means to: jobs in flight when the master died.
    expect(inFlight).toBeGreaterThan(JOBS / 2);
    expect(failover.promoted).not.toBe(failover.killed);
    expect(await sentinel.masterPort()).toBe(failover.promoted);

    const reader = connectTo(sentinel.url);
    try {
      for (const { jobId, sse } of watchers) {
        const events = payloads<Event>(sse);
        const last = events.at(-1);
        expect(last, `watcher of ${jobId}`).toMatchObject({ job_id: jobId, status: 'completed' });
        const seqs = events.map((e) => e.seq);
        expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
        const [[, fields] = ['', []]] = await reader.xrevrange(
          keys.jobHistoryKey(jobId),
          '+',
          '-',
          'COUNT',
          1,
        );
        expect(last?.seq).toBe(decodeEvent(historyEntryField(fields, 'e') ?? '').seq);
        expect(sse.comments.at(-1)).toBe('Connection closing - job completed');
      }
    } finally {
      reader.disconnect();
    }
    for (const all of everything) {
      await waitFor('every job’s end on the all-jobs stream', () =>
        jobIds.every((id) =>
          payloads<Event>(all).some((e) => e.job_id === id && e.event_type === 'job:completed'),
        ),
      );
      for (const id of jobIds) {
        const seqs = payloads<Event>(all)
          .filter((e) => e.job_id === id)
          .map((e) => e.seq);
        expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
      }
      all.close();
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
