import { Cluster } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { createKeyspace, decodeEvent, historyEntryField } from '../../../src/contract/index.js';
import { startMare, type MareService } from '../../../src/mare/mare-service.js';
import { clusterSlot } from '../../helpers/cluster-slot.js';
import { RedisCluster, type Failover } from '../../helpers/redis-cluster.js';
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
 * Drill: on a Redis Cluster, the master holding the global history (and about a third of the
 * job channels) is killed with SIGKILL while 20 jobs run and two gateways serve their watchers.
 * Its replica takes over; the worker's publishes wait and are sent again; the gateways
 * subscribe again (sharded job channels on the new master, `triton:jobs:all` on another node)
 * and replay from history what they missed. Every watcher must get its job's terminal event,
 * each event at most once and in order, and no job may stay running.
 */

const JOBS = 20;
const keys = createKeyspace();

let cluster: RedisCluster | undefined;
let system: TestSystem | undefined;
let second: MareService | undefined;
let reader: Cluster | undefined;

afterAll(async () => {
  reader?.disconnect();
  await second?.close();
  await system?.close();
  await cluster?.close();
});

it(
  'every watcher gets its job’s terminal event after a master dies and its replica takes over',
  { timeout: 120_000 },
  async () => {
    cluster = await RedisCluster.start();
    system = await startSystem({
      redis: cluster,
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

    // An all-jobs watcher on each gateway, open before the jobs exist.
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
    // Each job watched on both gateways.
    const watchers: Array<{ jobId: string; sse: SseConnection }> = [];
    for (const [i, jobId] of jobIds.entries()) {
      for (const url of i % 2 ? gateways : [...gateways].reverse()) {
        watchers.push({ jobId, sse: await openSse(`${url}/v1/triton/jobs/${jobId}/subscribe`) });
      }
    }

    const globalSlot = clusterSlot(keys.globalHistoryKey);
    const doomed = await cluster.masterOf(globalSlot);
    const ranges = (await cluster.slots()).filter((r) => r.master === doomed);
    const onDoomed = jobIds.filter((id) => {
      const slot = clusterSlot(keys.jobChannel(id));
      return ranges.some((r) => r.from <= slot && slot <= r.to);
    });

    await waitFor('every job to be under way', () =>
      jobIds.every((id) =>
        watchers.some(
          (w) =>
            w.jobId === id && payloads<Event>(w.sse).some((e) => e.event_type === 'job:progress'),
        ),
      ),
    );
    const inFlight = watchers.filter(({ sse }) => !sse.isEnded).length;
    const failover: Failover = await cluster.killMaster(globalSlot);

    await waitFor('every watcher to end', () => watchers.every(({ sse }) => sse.isEnded), {
      timeoutMs: 60_000,
    });

    // The drill took the path it means to: jobs in flight, some of them on the dead master.
    expect(inFlight).toBeGreaterThan(JOBS);
    expect(onDoomed.length, 'jobs whose channel lived on the killed master').toBeGreaterThan(0);
    expect(failover.promoted).not.toBe(doomed);

    const { hostname, port } = new URL(cluster.url);
    reader = new Cluster([{ host: hostname, port: Number(port) }]);
    for (const { jobId, sse } of watchers) {
      const events = payloads<Event>(sse);
      const last = events.at(-1);
      expect(last, `watcher of ${jobId}`).toMatchObject({ job_id: jobId, status: 'completed' });
      const seqs = events.map((e) => e.seq);
      // Every event at most once, in order, ending with the job's last in history.
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
    // Both all-jobs watchers saw every job end, each job's events in order, none twice.
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
