import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { startMare, type MareService } from '../../../src/mare/mare-service.js';
import { PartProcess } from '../../helpers/part-process.js';
import { RedisCluster } from '../../helpers/redis-cluster.js';
import { openSse, payloads, type SseConnection } from '../../helpers/sse-client.js';
import {
  createClientWithProposition,
  http,
  startSystem,
  type TestSystem,
} from '../../helpers/system.js';
import { waitFor } from '../../helpers/wait.js';
import { expectWholeRun, type EventData as Event } from '../../helpers/events.js';

/**
 * Gateways and workers on a Redis Cluster: each gateway receives only the events its clients
 * watch (and the one cacher every job's), a restarted gateway's clients resume and another
 * gateway takes over caching, and a killed worker's job is finished by another worker.
 */

let cluster: RedisCluster;
let system: TestSystem;
/** Gateways besides the system's own (the first one started, so the cacher). */
const others: MareService[] = [];
const sources: EventSource[] = [];

beforeAll(async () => {
  cluster = await RedisCluster.start();
  system = await startSystem({
    redis: cluster,
    env: { GENERATION_STEP_MS: '150', SSE_RETRY_MS: '100', SUBMIT_RATE_LIMIT_PER_MINUTE: '0' },
  });
  for (let i = 0; i < 2; i++) others.push(await startGateway(0));
});

afterAll(async () => {
  for (const source of sources.splice(0)) source.close();
  for (const gateway of others.splice(0)) await gateway.close();
  await system?.close();
  await cluster?.close();
});

function startGateway(port: number, sys = system): Promise<MareService> {
  return startMare({
    common: sys.config.common,
    mare: { ...sys.config.mare, tritonApiUrl: sys.tritonUrl },
    logger: createLogger(sys.config.common),
    port,
  });
}

async function submit(sys: TestSystem, clientId: string): Promise<string> {
  const res = await http<{ job_id: string }>(
    'POST',
    `${sys.mareUrl}/v1/triton/clients/${clientId}/generate-templates`,
  );
  expect(res.status).toBe(202);
  return res.body.job_id;
}

/** A gateway's metrics: each sample by its name and labels. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The sum of a metric's samples whose labels include `labels`. */
function sum(samples: Map<string, number>, name: string, labels = ''): number {
  let total = 0;
  for (const [key, value] of samples) {
    if ((key === name || key.startsWith(`${name}{`)) && key.includes(labels)) total += value;
  }
  return total;
}

describe('gateways on a cluster', () => {
  it('each receives only the job events its clients watch; the one cacher also every job’s by triton:jobs:all; an idle gateway none', async () => {
    const [a, b, idle] = [system.mareUrl, others[0]!.url, others[1]!.url];
    const clientId = await createClientWithProposition(system.tritonUrl);
    const before = await Promise.all([a, b, idle].map(scrape));
    const jobs: Array<{ jobId: string; gateway: string; sse: SseConnection }> = [];
    for (let i = 0; i < 10; i++) {
      const jobId = await submit(system, clientId);
      const gateway = i % 2 ? b : a;
      jobs.push({
        jobId,
        gateway,
        sse: await openSse(`${gateway}/v1/triton/jobs/${jobId}/subscribe`),
      });
    }
    await waitFor('every stream to end', () => jobs.every((j) => j.sse.isEnded), {
      timeoutMs: 30_000,
    });
    for (const { sse } of jobs) expectWholeRun(payloads<Event>(sse));
    const eventsOf = (gateway: string) =>
      jobs
        .filter((j) => j.gateway === gateway)
        .reduce((n, j) => n + (payloads<Event>(j.sse).at(-1)?.seq ?? 0), 0);
    const all = eventsOf(a) + eventsOf(b);
    // Streams no longer watch: the job channels are let go.
    await waitFor('the job channels to be unsubscribed', async () =>
      (await Promise.all([a, b].map(scrape))).every(
        (m) => sum(m, 'mare_subscribed_job_channels') === 0,
      ),
    );
    const after = await Promise.all([a, b, idle].map(scrape));
    const received = (i: number, labels: string) =>
      sum(after[i]!, 'mare_events_received_total', labels) -
      sum(before[i]!, 'mare_events_received_total', labels);

    expect(after.map((m) => sum(m, 'mare_results_cacher'))).toEqual([1, 0, 0]);
    for (const [i, gateway] of [a, b].entries()) {
      // Its own jobs' events, but those published before its stream subscribed (a job's
      // job:queued, perhaps its job:started): about half of all, none of the other half.
      const own = eventsOf(gateway);
      expect(received(i, 'channel="job"')).toBeLessThanOrEqual(own);
      expect(received(i, 'channel="job"')).toBeGreaterThanOrEqual(own - 2 * 5);
      expect(received(i, 'channel="job"')).toBeLessThan(all / 2 + 5);
    }
    // The cacher had every event by triton:jobs:all; the other had none that way.
    expect(received(0, 'channel="all"')).toBeGreaterThanOrEqual(all);
    expect(received(1, 'channel="all"')).toBe(0);
    expect(received(2, '')).toBe(0);
  });

  it(
    'clients of a restarted gateway resume with Last-Event-ID and miss nothing, and one gateway caches results throughout',
    { timeout: 60_000 },
    async () => {
      const clientId = await createClientWithProposition(system.tritonUrl);
      const port = Number(new URL(system.mareUrl).port);
      const everything: Array<{ id: string; data: Event }> = [];
      const global = new EventSource(`${system.mareUrl}/v1/triton/events`);
      sources.push(global);
      global.onmessage = (message) =>
        everything.push({
          id: message.lastEventId,
          data: JSON.parse(message.data as string) as Event,
        });
      await waitFor('the all-jobs stream to open', () => global.readyState === EventSource.OPEN);
      const jobId = await submit(system, clientId);

      const received: Array<{ id: string; data: Event }> = [];
      const source = new EventSource(`${system.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      sources.push(source);
      source.onmessage = (message) =>
        received.push({
          id: message.lastEventId,
          data: JSON.parse(message.data as string) as Event,
        });
      await waitFor('a few events before the restart', () => received.length >= 3);

      // The cacher goes away: it gives its lease up, and another gateway takes it.
      await system.mare.close();
      others.push(await startGateway(port));

      await waitFor('the job stream to end', () => source.readyState === EventSource.CLOSED, {
        timeoutMs: 30_000,
      });
      expectWholeRun(received.map((r) => r.data));
      expect(received.map((r) => r.id)).toEqual(received.map((r) => String(r.data.seq)));
      await waitFor('the all-jobs stream to see the completion', () =>
        everything.some((r) => r.data.job_id === jobId && r.data.event_type === 'job:completed'),
      );
      const ofJob = everything.filter((r) => r.data.job_id === jobId);
      expectWholeRun(ofJob.map((r) => r.data));
      expect(ofJob.map((r) => r.id)).toEqual(
        ofJob.map((r) => `${jobId}:${r.data.seq}:${String(r.data.stream_id)}`),
      );

      // Exactly one gateway caches, and the result was cached.
      await waitFor('one cacher', async () => {
        const cachers = await Promise.all(
          others.map(async (g) => sum(await scrape(g.url), 'mare_results_cacher')),
        );
        return cachers.filter((c) => c === 1).length === 1;
      });
      await waitFor('the cached result', async () => {
        const res = await http<{ status: string }>(
          'GET',
          `${system.mareUrl}/v1/triton/jobs/${jobId}`,
        );
        return res.headers.get('x-cache') === 'hit' && res.body.status === 'completed';
      });
    },
  );
});

describe('a worker killed mid-job on a cluster', () => {
  let workerSystem: TestSystem | undefined;
  const workers: PartProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await workerSystem?.close();
  });

  function startWorker(sys: TestSystem): Promise<PartProcess> {
    const worker = PartProcess.start(
      'src/triton/main-worker.ts',
      {
        REDIS_URL: cluster.url,
        REDIS_KEY_PREFIX: sys.config.common.keyPrefix,
        DATABASE_URL: sys.databaseUrl ?? '',
        LOG_LEVEL: 'info',
        GENERATION_STEP_MS: '250',
        JOB_LOCK_MS: '1000',
        JOB_SWEEP_INTERVAL_MS: '500',
        JOB_MAX_STALLED: '1',
      },
      { ready: /^Worker running/ },
    );
    void worker.then((w) => workers.push(w));
    return worker;
  }

  it(
    'has its job retried by another worker, and watchers see it through to completion',
    { timeout: 90_000 },
    async () => {
      // A deployment of its own on the same cluster: its own key prefix, so its own queue.
      workerSystem = await startSystem({
        redis: cluster,
        worker: false,
        env: { REDIS_KEY_PREFIX: 'drill:' },
      });
      const sys = workerSystem;
      const clientId = await createClientWithProposition(sys.tritonUrl);
      const first = await startWorker(sys);
      const jobId = await submit(sys, clientId);
      const sse = await openSse(`${sys.mareUrl}/v1/triton/jobs/${jobId}/subscribe`);
      await waitFor('the job to be half done', () =>
        payloads<Event>(sse).some((e) => e.event_type === 'job:progress' && e.seq >= 5),
      );
      await first.kill();
      await startWorker(sys);

      await sse.ended;
      const events = payloads<Event>(sse);
      expect(events.filter((e) => e.event_type === 'job:started')).toHaveLength(2);
      expectWholeRun(events);
      const doc = await http<{ status: string; template_count: number }>(
        'GET',
        `${sys.tritonUrl}/jobs/${jobId}`,
      );
      expect(doc.body).toMatchObject({ status: 'completed', template_count: 7 });
    },
  );
});
