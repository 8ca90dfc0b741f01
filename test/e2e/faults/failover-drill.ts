import type { Cluster, Redis } from 'ioredis';
import { expect } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { createKeyspace, decodeEvent, historyEntryField } from '../../../src/contract/index.js';
import { startMare, type MareService } from '../../../src/mare/mare-service.js';
import { openSse, payloads, type SseConnection } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestRedis,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import type { EventData as Event } from '../../helpers/events.js';

/**
 * The failover drill of a replicated Redis (a cluster, or Sentinel): jobs run while two gateways
 * serve their watchers, the test kills a master, and every watcher must still get its job's
 * terminal event, each event at most once and in order, and every job must complete.
 */
export interface FailoverDrill {
  system: TestSystem;
  /** Both gateways' base URLs. */
  gateways: string[];
  jobIds: string[];
  /** Each job watched on both gateways. */
  watchers: Array<{ jobId: string; sse: SseConnection }>;
  /** An all-jobs watcher on each gateway, opened before the jobs existed. */
  everything: SseConnection[];
  /** Watchers whose stream had not ended once every job was under way. */
  inFlight: number;
  close(): Promise<void>;
}

const keys = createKeyspace();

/**
 * Starts the system on `redis` with a second gateway, submits `jobs` jobs and watches them, and
 * returns once every job is under way: the moment to kill a master.
 */
export async function startFailoverDrill(redis: TestRedis, jobs: number): Promise<FailoverDrill> {
  const system = await startSystem({
    redis,
    env: {
      GENERATION_STEP_MS: '250',
      WORKER_CONCURRENCY: String(jobs),
      SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
      // Longer than a failover: locks held across it are renewed, not lost.
      JOB_LOCK_MS: '10000',
    },
  });
  let second: MareService | undefined;
  const close = async () => {
    await second?.close();
    await system.close();
  };
  try {
    second = await startMare({
      common: system.config.common,
      mare: { ...system.config.mare, tritonApiUrl: system.tritonUrl },
      logger: createLogger(system.config.common),
      port: 0,
    });
    const gateways = [system.mareUrl, second.url];
    const clientId = await createClientWithProposition(system.tritonUrl);
    const everything = await Promise.all(gateways.map((url) => openSse(`${url}/v1/triton/events`)));
    const jobIds: string[] = [];
    for (let i = 0; i < jobs; i++) {
      const res = await http<{ job_id: string }>(
        'POST',
        `${system.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
      );
      expect(res.status).toBe(202);
      jobIds.push(res.body.job_id);
    }
    const watchers: FailoverDrill['watchers'] = [];
    for (const [i, jobId] of jobIds.entries()) {
      for (const url of i % 2 ? gateways : [...gateways].reverse()) {
        watchers.push({ jobId, sse: await openSse(`${url}/v1/triton/jobs/${jobId}/subscribe`) });
      }
    }
    await waitFor('every job to be under way', () =>
      jobIds.every((id) =>
        watchers.some(
          (w) =>
            w.jobId === id && payloads<Event>(w.sse).some((e) => e.event_type === 'job:progress'),
        ),
      ),
    );
    const inFlight = watchers.filter(({ sse }) => !sse.isEnded).length;
    return { system, gateways, jobIds, watchers, everything, inFlight, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Waits for every watcher to end and checks what each saw against the job's history (read
 * through `reader`), each all-jobs stream, and every job's record.
 */
export async function expectEveryJobCompleted(
  drill: FailoverDrill,
  reader: Redis | Cluster,
): Promise<void> {
  const { watchers, everything, jobIds, system } = drill;
  await waitFor('every watcher to end', () => watchers.every(({ sse }) => sse.isEnded), {
    timeoutMs: 60_000,
  });
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
      `${system.tritonUrl}/jobs/${jobId}`,
    );
    expect(res.body).toMatchObject({ status: 'completed', template_count: 7 });
  }
}
